"""What the software and threads looked like: package versions, git commit, BLAS threads.
No MLflow import, so training records it in its checkpoints: the process that logs to MLflow
may run later, elsewhere, with other thread settings."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

#: Distributions whose versions are recorded as ``version.<name>`` params.
PACKAGES = ("sparseae", "numpy", "scipy", "mlflow", "snakemake", "threadpoolctl")

#: Thread-count variables that BLAS / OpenMP libraries read at start-up.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def environment_info(folder: str | os.PathLike | None = None) -> dict[str, str]:
    """The software and threads as flat ``str -> str`` params: the platform, ``version.<name>``
    of Python and :data:`PACKAGES`, ``git.commit`` and ``git.dirty`` of the repository holding
    ``folder`` (default: the working directory) or this package (an editable install; none
    outside any), and the BLAS / OpenMP thread settings: variables and threadpoolctl's view."""
    info = {"platform": platform.platform(), "machine": platform.machine()}
    info["version.python"] = platform.python_version()
    for name in PACKAGES:
        try:
            info[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[f"version.{name}"] = "not installed"
    for where in [Path(folder) if folder is not None else Path.cwd(), Path(__file__).parent]:
        commit = _git(where, "rev-parse", "HEAD")
        if commit:
            status = _git(where, "status", "--porcelain", "--untracked-files=no")
            info.update({"git.commit": commit, "git.dirty": "true" if status else "false"})
            break
    info.update({f"env.{name}": os.environ.get(name, "unset") for name in THREAD_VARIABLES})
    info["cpu_count"] = str(os.cpu_count())
    # threadpoolctl only sees libraries already loaded: load the BLAS that training uses.
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import threadpool_info

    for pool in threadpool_info():
        # The file's stem tells numpy's and scipy's bundled OpenBLAS apart; the wheel-build
        # hash after "-" is dropped so the key stays stable across reinstalls.
        stem = Path(pool.get("filepath") or pool.get("prefix") or "lib").name
        name = stem.split(".")[0].split("-")[0].rstrip("_")
        for field in ("internal_api", "num_threads", "version", "threading_layer", "architecture"):
            if pool.get(field) is not None:
                info[f"threads.{name}.{field}"] = str(pool[field])
    return info


def _git(where: Path, *args: str) -> str:
    try:
        command = ["git", "-C", str(where), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def device_missing(device: str) -> str | None:
    """What ``training.device`` ``device`` lacks here (its array library, a GPU), or None."""
    if device == "cpu":
        return None
    library = "torch" if device == "cuda" else "array_api_strict"
    try:
        lib = __import__(library)
    except ImportError:
        extra = "gpu" if device == "cuda" else "test"
        return f"{library} is not installed (pip install 'sparseae[{extra}]')"
    if device == "cuda" and not lib.cuda.is_available():
        return f"PyTorch {lib.__version__} finds no CUDA GPU (torch.cuda.is_available() is False)"
    return None
