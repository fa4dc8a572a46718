"""File input/output: atomic writes (a crash never leaves a half-written file under the final
name), and parameter vectors as ``.npz`` and MATLAB ``.mat``."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from sparseae.errors import ForeignResultError, ParameterFileError, ResultFileError
from sparseae.model.autoencoder import parameter_count


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A leading dot, so globs over results skip the temporary file.
    suffix = path.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=suffix, dir=path.parent)
    tmp = Path(tmp_name)
    # mkstemp creates the file 0600; results are shared (clusters, CI), so give them the
    # permissions a plain open() would: 0666 minus the process umask.
    mask = os.umask(0o022)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        # Persist the rename itself; not every platform lets a folder be opened for this.
        with contextlib.suppress(OSError):
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(err, OSError) and err.filename is None and err.errno:
            # A write on a full disk names no file: name the one being written.
            raise OSError(err.errno, err.strerror, os.fspath(path)) from err
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[IO]:
    """:func:`atomic_path` as a text file open for writing (UTF-8)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        yield handle


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, sort_keys=True, allow_nan=True)
        handle.write("\n")


def read_json(path: str | os.PathLike, *, key: str | None = None) -> Any:
    """Read a JSON file written by :func:`write_json`; a damaged one is a ResultFileError, and
    with ``key`` an object recording another ``trajectory_key`` a ForeignResultError."""
    try:
        value = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError
        raise damaged(path, f"is not readable JSON ({err})") from None
    found = value.get("trajectory_key", key) if isinstance(value, dict) else key
    if key is not None and found != key:
        raise ForeignResultError(
            f"result file {path} belongs to trajectory {found}, not {key}: delete it and rerun"
        )
    return value


def read_tsv(path: str | os.PathLike, *, rows: int | None = None, numbers: bool = True):
    """The columns of a tab-separated table (header line first) by name, as float arrays; a
    table cut off, ragged, not numeric or without ``rows`` rows is a ResultFileError."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    table = [line.split("\t") for line in text.split("\n")[:-1]]
    if not text.endswith("\n") or len({len(row) for row in table}) != 1:
        raise damaged(path, "is cut off or has rows of different lengths")
    if rows is not None and len(table) - 1 != rows:
        raise damaged(path, f"has {len(table) - 1} rows, not the {rows} expected")
    try:
        columns = np.array(table[1:], dtype=float if numbers else str).reshape(-1, len(table[0]))
    except ValueError as err:
        raise damaged(path, f"holds a value that is not a number ({err})") from None
    return dict(zip(table[0], columns.T, strict=True))


def check_result_file(path: str | os.PathLike) -> None:
    """Refuse a damaged result before it is uploaded: JSON that does not parse, a ragged or
    cut table, a PNG without its signature or end chunk (``IEND`` and its CRC last)."""
    path = Path(path)
    if path.suffix == ".json":
        read_json(path)
    elif path.suffix == ".tsv":
        read_tsv(path, numbers=False)
    elif path.suffix == ".png" and (data := path.read_bytes())[:4] + data[-8:-4] != b"\x89PNGIEND":
        raise damaged(path, "is not a complete PNG image")


def damaged(path: str | os.PathLike, problem: str) -> ResultFileError:
    """The error of a damaged result file: it names the file and the fix."""
    return ResultFileError(f"result file {path} {problem}: delete it and rerun")


def _as_theta(theta: Any, where: str):
    theta = np.asarray(theta)
    if theta.ndim == 2 and 1 in theta.shape:
        theta = theta.reshape(-1)  # MATLAB column (n × 1) or row (1 × n) vector
    if theta.ndim != 1 or theta.size == 0:
        raise ParameterFileError(
            f"{where}: theta must be a non-empty vector, got shape {theta.shape}"
        )
    if not np.issubdtype(theta.dtype, np.number) or np.iscomplexobj(theta):
        raise ParameterFileError(f"{where}: theta must be real numbers, got dtype {theta.dtype}")
    theta = theta.astype(np.float64)
    if not np.all(np.isfinite(theta)):
        raise ParameterFileError(f"{where}: theta contains non-finite values")
    return theta


def save_theta_npz(path: str | os.PathLike, theta: Any, config: Any = None) -> None:
    """Write flat parameters to ``.npz`` atomically: ``theta`` (float64) and ``config`` (a
    mapping or ``None``) as a JSON string in a 0-d unicode array: no pickle."""
    theta = _as_theta(theta, f"save_theta_npz({path})")
    text = json.dumps(config, sort_keys=True)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, theta=theta, config=np.array(text))


def load_theta_npz(path: str | os.PathLike):
    """``(theta, config)`` from a file written by :func:`save_theta_npz` (``config`` is
    ``None`` when absent); every failure names the file."""
    label = f"theta file {path}"
    members = read_npz(path, ["theta"], optional=["config"], label=label)
    theta = _as_theta(members["theta"], label)
    raw = members.get("config")
    config = None if raw is None else json_member(raw, "config", label=label)
    return theta, config


def read_npz(path, required, *, optional=(), label: str, finite=()):
    """The ``required`` and present ``optional`` members of an ``.npz`` archive, by name.

    Read without pickle; ``label`` names the file in messages. Raises FileNotFoundError or
    ParameterFileError (unreadable archive, missing or pickled member, NaN or inf in a member
    named in ``finite``: training data, refused before it trains to a NaN cost)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{label} does not exist")
    try:
        # Our own handle: np.load leaks it when the archive is corrupt.
        with open(path, "rb") as handle:
            archive = np.load(handle, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise ParameterFileError(
                    f"{label} is not an .npz archive but a single array (.npy format); it must "
                    f"be written by numpy.savez with the keys {list(required)}"
                )
            with archive:
                missing = [name for name in required if name not in archive.files]
                if missing:
                    names = ", ".join(repr(name) for name in missing)
                    raise ParameterFileError(
                        f"{label} lacks key{'s' if len(missing) > 1 else ''} {names} "
                        f"(has {sorted(archive.files)})"
                    )
                # Members are read lazily: an object (pickled) member fails here, not in
                # np.load; so does a damaged compressed member.
                wanted = [*required, *(name for name in optional if name in archive.files)]
                members = {name: archive[name] for name in wanted}
    except ParameterFileError:
        raise
    except Exception as err:  # noqa: BLE001 - see below
        # A damaged archive fails in many ways (BadZipFile, zlib.error, OSError, EOFError,
        # ValueError; SyntaxError or TokenError from numpy's header parser): all unreadable.
        raise ParameterFileError(
            f"{label} is not a readable .npz file: {type(err).__name__}: {err}"
        ) from err
    for name in finite:
        bad = np.argwhere(~np.isfinite(numeric_member(members[name], name, label=label)))
        if bad.size:
            where = tuple(bad[0].tolist())
            raise ParameterFileError(f"{label}: key {name!r} holds NaN or inf (first at {where})")
    return members


def numeric_member(raw, name: str, *, label: str):
    """``raw`` if it holds real numbers; a member of strings (or complex numbers) is refused."""
    if not np.issubdtype(raw.dtype, np.number) or np.iscomplexobj(raw):
        raise ParameterFileError(
            f"{label}: key {name!r} must hold real numbers, has dtype {raw.dtype}"
        )
    return raw


def json_member(raw, name: str, *, label: str, expect: type | None = None):
    """Decode a 0-d string member read by :func:`read_npz` as JSON (of type ``expect``)."""
    try:
        value = json.loads(str(raw[()]))
    except (json.JSONDecodeError, TypeError, IndexError) as err:
        raise ParameterFileError(f"{label}: key {name!r} is not a JSON string: {err}") from err
    if expect is not None and not isinstance(value, expect):
        raise ParameterFileError(
            f"{label}: key {name!r} must be a JSON {expect.__name__}, is {type(value).__name__}"
        )
    return value


def save_theta_mat(
    path: str | os.PathLike, theta: Any, visible_size=None, hidden_size=None
) -> None:
    """Write parameters as MATLAB ``.mat`` atomically: ``opttheta`` an ``n × 1`` column as
    ``train.m`` leaves it, plus ``visibleSize`` and ``hiddenSize`` when given (checked)."""
    from scipy.io import savemat

    theta = _as_theta(theta, f"save_theta_mat({path})")
    variables: dict[str, Any] = {"opttheta": theta.reshape(-1, 1)}
    if (visible_size is None) != (hidden_size is None):
        raise ValueError("give both visible_size and hidden_size, or neither")
    if visible_size is not None:
        v, h = int(visible_size), int(hidden_size)
        if theta.size != parameter_count(v, h):
            raise ValueError(
                f"save_theta_mat({path}): theta has length {theta.size}, expected "
                f"{parameter_count(v, h)} for visible_size={v}, hidden_size={h}"
            )
        variables["visibleSize"] = np.array([[float(v)]])
        variables["hiddenSize"] = np.array([[float(h)]])
    with atomic_path(path, suffix=".mat") as tmp:
        savemat(tmp, variables, format="5", do_compression=False, oned_as="column")


def load_theta_mat(path: str | os.PathLike, variable: str = "opttheta"):
    """``(theta, info)`` from a MATLAB ``.mat`` file (the original layout or ours)."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MATLAB file {path} does not exist")
    try:
        contents = loadmat(path)
    except Exception as err:  # scipy raises several unrelated types for bad files
        raise ParameterFileError(f"{path} is not a readable MATLAB .mat file: {err}") from err
    names = sorted(k for k in contents if not k.startswith("__"))
    if variable not in contents:
        raise ParameterFileError(f"{path} has no variable {variable!r} (variables: {names})")
    theta = _as_theta(contents[variable], f"{path}: variable {variable!r}")
    v, h = (
        int(round(float(contents[name].reshape(-1)[0]))) if name in contents else None
        for name in ("visibleSize", "hiddenSize")
    )
    if v is not None and h is not None and theta.size != parameter_count(v, h):
        raise ValueError(
            f"{path}: opttheta has length {theta.size} but visibleSize={v}, hiddenSize={h} "
            f"need {parameter_count(v, h)}"
        )
    return theta, {"visible_size": v, "hidden_size": h, "variables": names}
