"""Array-API dispatch: numpy arrays take the blocked, threaded numpy code; arrays of any other
array-API library (PyTorch, CuPy, ``array_api_strict``) the code written once against the
standard, computed in that library on that device (docs/model.md, "Devices")."""

from __future__ import annotations

import math

import numpy as np

from sparseae.environment import device_missing
from sparseae.errors import ConfigError

__all__ = ["DEVICES", "foreign", "namespace", "finite", "to_numpy", "on_device"]

#: ``training.device``: numpy on the CPU; PyTorch on a GPU; ``array_api_strict`` runs the GPU
#: path's code on the CPU (for tests: it checks that only the standard is used).
DEVICES = ("cpu", "cuda", "array_api_strict")


def foreign(*arrays) -> bool:
    """Whether any argument is an array of a library other than numpy (the array-API path).
    numpy inputs are answered without importing ``array_api_compat`` (start-up, hot path)."""
    if all(isinstance(a, (np.ndarray, np.generic)) for a in arrays):
        return False
    from array_api_compat import is_array_api_obj, is_numpy_array

    return any(is_array_api_obj(a) and not is_numpy_array(a) for a in arrays)


def namespace(*arrays):
    """``(xp, device)`` of the arrays (one library and device for all, else a TypeError)."""
    from array_api_compat import array_namespace, device

    return array_namespace(*arrays), device(arrays[0])


def finite(f, g) -> bool:
    """Whether the cost ``f`` and every element of the gradient ``g`` are finite."""
    xp = np if isinstance(g, np.ndarray) else namespace(g)[0]
    return math.isfinite(f) and bool(xp.all(xp.isfinite(g)))


def to_numpy(x) -> np.ndarray:
    """A float64 numpy copy of ``x`` from any library or device (checkpoints, records)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np.array(x, dtype=np.float64)
    if hasattr(x, "detach"):  # PyTorch: through host memory
        return x.detach().cpu().numpy().astype(np.float64)
    if hasattr(x, "get"):  # CuPy
        return np.asarray(x.get(), dtype=np.float64)
    return np.array(np.from_dlpack(x), dtype=np.float64)


def on_device(x, name: str):
    """``x`` (numpy) as an array of ``training.device`` ``name``; numpy itself for ``cpu``."""
    if name == "cpu":
        return x
    missing = device_missing(name)
    if missing:
        raise ConfigError(f"training.device {name!r}: {missing}; install it or train on cpu")
    if name == "cuda":
        import torch as lib

        where = "cuda"
    else:
        import array_api_strict as lib

        where = lib.Device("CPU_DEVICE")
    xp = namespace(lib.asarray(0.0))[0]
    return xp.asarray(np.ascontiguousarray(x), device=where)
