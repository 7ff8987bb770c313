"""The BSD-3-Clause licence: its file, the metadata that declares it, and the built packages."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_licence_file_is_bsd_3_clause_of_the_developers():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n")
    assert "Copyright (c) " in text and ", the captum_simec developers\n" in text
    assert "3. Neither the name of the copyright holder nor the names of its" in text
    assert "ARISING IN ANY WAY OUT OF THE USE" in text


def test_pyproject_declares_the_licence_and_its_file():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "BSD-3-Clause"
    assert project["license-files"] == ["LICENSE"]


BUILD = """
from setuptools import build_meta
wheel = build_meta.build_wheel({folder!r})
sdist = build_meta.build_sdist({folder!r})
print("built:", wheel, sdist)
"""


def test_wheel_and_sdist_carry_the_licence(tmp_path):
    setuptools = pytest.importorskip("setuptools")
    major = int(setuptools.__version__.split(".")[0])
    if major < 77:
        pytest.skip(f"setuptools {setuptools.__version__} predates license-files (77)")
    built = subprocess.run(
        [sys.executable, "-c", BUILD.format(folder=str(tmp_path))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel_name, sdist_name = built.stdout.split("built:")[-1].split()
    with zipfile.ZipFile(tmp_path / wheel_name) as wheel:
        names = wheel.namelist()
        assert "captum_simec-0.1.0.dist-info/licenses/LICENSE" in names
        metadata = wheel.read("captum_simec-0.1.0.dist-info/METADATA").decode()
    assert "License-Expression: BSD-3-Clause" in metadata
    assert "License-File: LICENSE" in metadata
    with tarfile.open(tmp_path / sdist_name) as sdist:
        assert "captum_simec-0.1.0/LICENSE" in sdist.getnames()
