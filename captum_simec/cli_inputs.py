"""The command line's inputs: a user's model and data, loaded from files with clear errors.

A problem with them raises `UsageError`, which ``captum-simec`` reports in one line with
exit code 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["UsageError", "fit_model_to_data", "load_data", "load_model"]

_TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit")


class UsageError(Exception):
    """A problem with the command-line arguments; reported in one line, exit code 2."""


# ----------------------------------------------------------------------------- loading


def _import_module(name: str) -> Any:
    """A module from a dotted name or from a path to a ``.py`` file."""
    if name.endswith(".py"):
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"--model: the file {path} does not exist.")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise UsageError(f"--model: {path} cannot be imported as a Python module.")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise UsageError(f"--model: importing {path} failed: {error!r}") from error
        return module
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        raise UsageError(
            f"--model: module {name!r} not found ({error}); give an importable module or a "
            "path to a .py file, as MODULE:FACTORY."
        ) from error
    except Exception as error:
        raise UsageError(f"--model: importing {name!r} failed: {error!r}") from error


def load_model(spec: str, state_dict: str | None = None) -> Callable[..., Tensor]:
    """Loads a model from ``module:factory`` (dotted or a ``.py`` path) or a TorchScript file.

    The factory is called without arguments (a module class counts as a factory; a module
    instance is used as it is); the optional state dict (``torch.load``-able, weights only,
    possibly under a ``"state_dict"`` key) is loaded strictly; the model is put in eval mode.

    Raises:
        UsageError: the module, attribute or file is missing, the factory is not callable or
            fails, the state dict does not fit.
    """
    path = Path(spec)
    if ":" not in spec or (path.suffix in _TORCHSCRIPT_SUFFIXES and path.is_file()):
        model = _load_torchscript(spec, path)
    else:
        model = _load_factory(spec)
    if state_dict is not None:
        _load_state_dict(model, state_dict)
    if isinstance(model, nn.Module):
        model.eval()
    return model


def _load_torchscript(spec: str, path: Path) -> Callable[..., Tensor]:
    if path.suffix == ".py" or not path.is_file():
        raise UsageError(
            f"--model {spec!r}: expected MODULE:FACTORY (e.g. my_models.py:make_model) or "
            "an existing TorchScript file."
        )
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript loudly
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except Exception as error:
        raise UsageError(
            f"--model: {path} is not a TorchScript file ({error}); save the model with "
            "torch.jit.script(model).save(path), or pass MODULE:FACTORY."
        ) from error


def _load_factory(spec: str) -> Callable[..., Tensor]:
    module_name, _, attribute = spec.rpartition(":")
    module = _import_module(module_name)
    if not hasattr(module, attribute):
        raise UsageError(f"--model: {module_name!r} has no attribute {attribute!r}.")
    factory = getattr(module, attribute)
    if isinstance(factory, nn.Module):
        return factory
    if not callable(factory):
        raise UsageError(
            f"--model: {module_name}:{attribute} is of type {type(factory).__name__}, not a "
            "callable factory; point at a function or class that returns the model."
        )
    try:
        model = factory()
    except Exception as error:
        raise UsageError(
            f"--model: calling {module_name}:{attribute}() failed: {error!r}"
        ) from error
    if not callable(model):
        raise UsageError(
            f"--model: {module_name}:{attribute}() returned a {type(model).__name__}, not a "
            "model; return a torch.nn.Module."
        )
    return model


def _load_state_dict(model: Callable[..., Tensor], state_dict: str) -> None:
    if not isinstance(model, nn.Module):
        raise UsageError("--state-dict needs a torch.nn.Module model.")
    try:
        state = torch.load(state_dict, map_location="cpu", weights_only=True)
    except FileNotFoundError as error:
        raise UsageError(f"--state-dict: {state_dict} does not exist.") from error
    except Exception as error:
        raise UsageError(f"--state-dict: cannot read {state_dict}: {error}") from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    try:
        model.load_state_dict(state)
    except Exception as error:
        message = " ".join(str(error).split())
        raise UsageError(f"--state-dict does not fit the model: {message}") from error


def _pick(mapping: Any, names: Sequence[str]) -> Any:
    for name in names:
        if name in mapping:
            return mapping[name]
    return None


def load_data(path: str | Path) -> tuple[Tensor, Tensor | None]:
    """Inputs and optional labels from a ``.pt`` or ``.npz`` file.

    A ``.pt`` file holds a dict (keys ``x``/``y`` or ``inputs``/``labels``), an
    ``(inputs, labels)`` tuple or an inputs tensor; an ``.npz`` file the same keys.

    Raises:
        UsageError: missing file or keys, non-float inputs, inputs without a batch dimension,
            labels that are not one integer per example.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--data: {path} does not exist.")
    if path.suffix == ".npz":
        with np.load(path) as archive:
            content: Any = {key: torch.from_numpy(archive[key]) for key in archive.files}
    elif path.suffix in (".pt", ".pth"):
        try:
            content = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise UsageError(f"--data: cannot read {path} with torch.load: {error}") from error
    else:
        raise UsageError(f"--data: {path} must be a .pt or .npz file.")
    if isinstance(content, dict):
        x, y = _pick(content, ("x", "inputs")), _pick(content, ("y", "labels"))
        if x is None:
            raise UsageError(
                f"--data: {path} has keys {sorted(content)}; store the inputs under 'x' (or "
                "'inputs') and the labels under 'y' (or 'labels')."
            )
    elif isinstance(content, list | tuple) and len(content) in (1, 2):
        x, y = content[0], (content[1] if len(content) == 2 else None)
    elif isinstance(content, Tensor):
        x, y = content, None
    else:
        raise UsageError(
            f"--data: {path} holds a {type(content).__name__}; store a dict with keys 'x' and "
            "'y', an (x, y) tuple or an inputs tensor."
        )
    if not isinstance(x, Tensor):
        raise UsageError(f"--data: the inputs in {path} are a {type(x).__name__}, not a tensor.")
    if not x.is_floating_point():
        raise UsageError(
            f"--data: the inputs have dtype {x.dtype}; store floats scaled to the model's domain "
            "(e.g. x.float() / 255)."
        )
    if x.dim() < 2:
        raise UsageError(
            f"--data: the inputs have shape {tuple(x.shape)}, no batch dimension; store a stack "
            "of examples (N, ...) (one example: x[None])."
        )
    if y is not None:
        if not isinstance(y, Tensor) or y.is_floating_point() or y.dim() != 1:
            raise UsageError("--data: the labels must be a 1-D integer tensor, one per example.")
        if y.shape[0] != x.shape[0]:
            raise UsageError(
                f"--data: {x.shape[0]} inputs but {y.shape[0]} labels; store one label per example."
            )
        y = y.long()
    return x, y


def fit_model_to_data(model: Callable[..., Tensor], x: Tensor, y: Tensor | None = None) -> Tensor:
    """Casts `x` to the model's float dtype, checks one forward pass on an example and that
    the labels `y` (if any) are classes of the model.

    Raises:
        UsageError: the model rejects the inputs, is no classifier, or labels lie outside
            its classes.
    """
    if isinstance(model, nn.Module):
        parameter = next(model.parameters(), None)
        if parameter is not None and parameter.is_floating_point():
            x = x.to(parameter.dtype)
    try:
        with torch.no_grad():
            output = model(x[:1])
    except Exception as error:
        message = " ".join(str(error).split())
        raise UsageError(
            f"the model rejects inputs of shape {tuple(x.shape[1:])} per example (sent as "
            f"{tuple(x[:1].shape)}): {message}"
        ) from error
    if not isinstance(output, Tensor) or output.dim() != 2 or output.shape[1] < 2:
        shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
        raise UsageError(
            f"the model returned {shape} for one example; the audit needs a classifier with "
            "(batch, classes) outputs and at least two classes."
        )
    classes = output.shape[1]
    if y is not None and bool(((y < 0) | (y >= classes)).any()):
        bad = sorted({int(label) for label in y[(y < 0) | (y >= classes)]})
        raise UsageError(
            f"--data: labels {bad[:10]}{' ...' if len(bad) > 10 else ''} are not classes of "
            f"the model, which has {classes} outputs (classes 0 to {classes - 1}); store "
            "labels in that range, or leave them out."
        )
    return x
