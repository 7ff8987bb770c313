"""The package's import graph: lazy top-level exports and layers that load only what they use."""

import subprocess
import sys

import pytest

import captum_simec


def loaded_after(statement: str) -> set[str]:
    """Modules in `sys.modules` after running `statement` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    return set(result.stdout.split())


def test_geometry_does_not_load_captum_or_the_upper_layers():
    loaded = loaded_after("import captum_simec.geometry")
    assert "captum_simec.geometry.spectrum" in loaded
    # importing any part of Captum loads captum.robust: the geometry must not import Captum
    assert {"captum", "captum.robust", "captum_simec.audit", "captum_simec.attr"}.isdisjoint(loaded)


def test_zoo_models_do_not_load_data_or_scikit_learn():
    loaded = loaded_after("from captum_simec.zoo import PaperMNISTCNN")
    assert "captum_simec.zoo.models" in loaded
    assert {"captum_simec.zoo.datasets", "captum_simec.zoo.training", "sklearn"}.isdisjoint(loaded)


@pytest.mark.parametrize("name", captum_simec.__all__)
def test_every_public_name_imports_and_is_listed_by_dir(name):
    assert name in dir(captum_simec)
    value = getattr(captum_simec, name)
    namespace: dict = {}
    exec(f"from captum_simec import {name}", namespace)
    assert namespace[name] is value


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'simex'"):
        captum_simec.simex  # noqa: B018
