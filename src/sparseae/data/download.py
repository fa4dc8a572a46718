"""Verified downloads from mirrors, with retries: streamed to a hidden temporary file beside
the target, checked against every recorded digest, only then renamed onto it. Members of a
downloaded tar archive are extracted the same way: streamed, verified, renamed."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import http.client
import logging
import os
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO, TextIO

from sparseae.data.sources import FileSpec
from sparseae.errors import ChecksumError, DatasetError, DownloadError
from sparseae.io import atomic_path

logger = logging.getLogger("sparseae.datasets")

# Few tools print a git blob id: messages that show one say which does.
_GIT_BLOB_HINT = "; `git hash-object FILE` prints a git-blob id"
_CHUNK = 1 << 16
# Leftover temporary files of a download killed with SIGKILL are hidden (leading dot) and
# never read as data; ones older than this are removed on the next fetch of the same file.
_STALE_SECONDS = 3600.0

ProgressCallback = Callable[[str, int, "int | None"], None]


def file_digests(path: str | os.PathLike, algorithms: Iterable[str]) -> dict:
    """``{algorithm: hex digest}`` of a file, read once (``git-blob``: git's blob id)."""
    path = Path(path)
    hashers = {}
    for name in algorithms:
        # hashlib names its algorithms (md5, sha256); git's blob id is a sha1 with a header.
        hashers[name] = hashlib.new("sha1" if name == "git-blob" else name, usedforsecurity=False)
        if name == "git-blob":
            hashers[name].update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            for hasher in hashers.values():
                hasher.update(block)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def _checksum_problem(path: str | os.PathLike, expected: Mapping[str, str]) -> str:
    """What differs from the recorded digests (``"md5: expected …, found …"``), "" if none."""
    actual = file_digests(path, expected.keys())
    problem = "; ".join(
        f"{name}: expected {want.lower()}, found {actual[name]}"
        for name, want in expected.items()
        if actual[name] != want.lower()
    )
    return problem + (_GIT_BLOB_HINT if "git-blob" in problem else "")


class _Progress:
    """Byte counter for one file: a live line on a TTY, one summary line in the log."""

    def __init__(self, name: str, total: int | None, callback, stream: TextIO):
        self.name, self.total, self.callback, self.stream = name, total, callback, stream
        self.done, self.start = 0, time.monotonic()
        self.shown = -float("inf")  # the first update draws the live line at once
        try:
            self.live = callback is None and stream.isatty()
        except (AttributeError, ValueError):
            self.live = False

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if self.callback is not None:
            self.callback(self.name, self.done, self.total)
        elif self.live and time.monotonic() - self.shown > 0.2:
            self.shown = time.monotonic()
            self.stream.write(f"\r{self}\033[K")
            self.stream.flush()

    def finish(self, url: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
        logger.info("downloaded %s from %s", self, url)

    def __str__(self) -> str:
        seconds = max(time.monotonic() - self.start, 1e-9)
        total = f" of {_fmt_bytes(self.total)}" if self.total else ""
        rate = _fmt_bytes(self.done / seconds)
        return f"{self.name}: {_fmt_bytes(self.done)}{total} in {seconds:.1f} s ({rate}/s)"


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def _url(mirror: str, name: str) -> str:
    # A mirror without a scheme is a local folder.
    if "://" not in mirror:
        return Path(mirror, name).resolve().as_uri()
    return mirror.rstrip("/") + "/" + name


class _Failure(Exception):
    """One attempt failed; ``retry`` says whether the same URL is worth trying again."""

    def __init__(self, reason: str, retry: bool):
        super().__init__(reason)
        self.retry = retry


def _stream_to(url: str, handle: BinaryIO, timeout: float, progress: _Progress) -> None:
    """Copy ``url`` into ``handle``; raise :class:`_Failure` with a readable reason."""
    try:
        # The timeout bounds the connection and every single read, so a server that stops
        # sending in the middle of a body is abandoned after ``timeout`` seconds.
        # urllib raises HTTPError for an error status; another 2xx fails the checks below.
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length") if response.headers else None
            expected = int(length) if length and length.isdigit() else None
            progress.total = progress.total or expected
            # read1 returns what has arrived (up to _CHUNK) instead of waiting to fill the
            # buffer, so progress and the "after N bytes" of a timeout are accurate.
            read = getattr(response, "read1", response.read)
            while block := read(_CHUNK):
                handle.write(block)
                progress.update(len(block))
    except urllib.error.HTTPError as exc:
        raise _Failure(f"HTTP {exc.code} {exc.reason}", retry=exc.code >= 500) from None
    except TimeoutError:
        raise _Failure(
            f"timed out: no data for {timeout:g} s (after {progress.done} bytes)", retry=True
        ) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise _Failure(f"timed out connecting after {timeout:g} s", retry=True) from None
        # A missing file in a local (file://) mirror will stay missing: no retry.
        missing = isinstance(reason, FileNotFoundError)
        raise _Failure(f"cannot connect: {reason}", retry=not missing) from None
    except (http.client.HTTPException, OSError) as exc:
        if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise  # the local disk, not the connection: no retry, no other mirror helps
        raise _Failure(
            f"connection broken after {progress.done} bytes: {type(exc).__name__}: {exc}",
            retry=True,
        ) from None
    if expected is not None and progress.done != expected:
        raise _Failure(
            f"truncated: received {progress.done} of {expected} bytes announced", retry=True
        )


def remove_stale_temporaries(target: Path, older_than: float = _STALE_SECONDS) -> None:
    """Remove the ``.{name}.tmp-*`` files that writers of ``target`` killed with SIGKILL left
    (:func:`~sparseae.io.atomic_path` cannot clean up then), those older than ``older_than`` s."""
    now = time.time()
    for leftover in target.parent.glob(f".{target.name}.tmp-*"):
        with contextlib.suppress(OSError):
            if now - leftover.stat().st_mtime >= older_than:
                leftover.unlink()
                logger.info("removed %s, left by a killed earlier attempt", leftover)


def download_file(
    name: str,
    dest: Path,
    mirrors: Sequence[str],
    checksums: Mapping[str, str],
    *,
    size: int | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    retry_wait: float = 1.0,
    progress: ProgressCallback | None = None,
    stream: TextIO | None = None,
) -> Path:
    """Download ``dest / name`` from the first mirror that serves it with the right checksums.

    ``mirrors``: base URLs (``http(s)://``, ``file://`` or a folder) tried in order. ``timeout``
    bounds the connection and each read; a network failure is retried ``retries`` times per
    mirror after ``retry_wait`` seconds doubled each time (a 404 or a checksum mismatch is not).
    ``progress(name, done, total)`` follows the download, else a live line on a terminal
    ``stream``. Raises DownloadError naming every URL tried, why, and the manual fix."""
    if not checksums:
        raise ValueError(f"refusing to download {name} without a recorded checksum")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    remove_stale_temporaries(target)
    tried: list[str] = []
    for mirror in mirrors:
        url = _url(mirror, name)
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(retry_wait * 2 ** (attempt - 1))
            meter = _Progress(name, size, progress, stream or sys.stderr)
            try:
                with atomic_path(target) as tmp:
                    with open(tmp, "wb") as handle:
                        _stream_to(url, handle, timeout, meter)
                    if size is not None and meter.done != size:
                        raise _Failure(
                            f"wrong size: received {meter.done} bytes, expected {size}",
                            retry=meter.done < size,
                        )
                    problem = _checksum_problem(tmp, checksums)
                    if problem:
                        # A mirror serving other bytes will serve them again: next mirror.
                        raise _Failure(f"checksum mismatch ({problem})", retry=False)
                meter.finish(url)
                return target
            except _Failure as failure:
                tried.append(f"{url} (attempt {attempt + 1}): {failure}")
                logger.warning("download of %s failed: %s", url, failure)
                if not failure.retry:
                    break
    listing = "\n".join(f"  - {line}" for line in tried) or "  (no mirrors configured)"
    expected = ", ".join(f"{algorithm} {value}" for algorithm, value in checksums.items())
    expected += _GIT_BLOB_HINT if "git-blob" in checksums else ""
    raise DownloadError(
        f"could not download {name}; tried:\n{listing}\n"
        f"To place it by hand, copy the file to {target.resolve()} (expected {expected}"
        + (f", {size} bytes" if size is not None else "")
        + ") and run again; it will be verified and used."
    )


def ensure_files(
    specs: Sequence[FileSpec],
    dest: Path,
    mirrors: Sequence[str],
    archive: FileSpec | None = None,
    **options,
) -> list[Path]:
    """``dest / spec.name`` of every spec, verified: a present file is checked and never
    replaced (it may be the user's own copy, the only evidence of what went wrong); a missing
    one is downloaded by :func:`download_file` (``options`` are its keywords) or, for a source
    with an ``archive``, extracted from it (the archive itself ensured the same way, and kept)."""
    dest, missing = Path(dest), []
    for spec in specs:
        target = dest / spec.name
        if target.exists():
            problem = _checksum_problem(target, spec.checksums)
            if problem:
                raise ChecksumError(
                    f"{target} is present but its checksum is wrong ({problem}). It was not "
                    "replaced. Delete or move it to download it again, or put the correct file "
                    "there."
                )
            logger.info("%s: present and verified, not downloaded again", target)
        elif archive is None:
            download_file(spec.name, dest, mirrors, spec.checksums, size=spec.size, **options)
        else:
            missing.append(spec)
    if missing:
        # Fetch jobs of two splits may run at once: one downloads the archive, the other waits.
        # The lock is on the folder itself, so it leaves no file behind.
        dest.mkdir(parents=True, exist_ok=True)
        folder = os.open(dest, os.O_RDONLY)
        try:
            fcntl.flock(folder, fcntl.LOCK_EX)
            ensure_files([archive], dest, mirrors, **options)
        finally:
            os.close(folder)
        extract_members(dest / archive.name, missing, dest)
    return [dest / spec.name for spec in specs]


def extract_members(archive: Path, members: Sequence[FileSpec], dest: Path) -> None:
    """Write the ``members`` of tar ``archive`` (found by file name in any of its folders) into
    ``dest``, reading the archive once as a stream (a 2.5 GB archive is never unpacked whole);
    each member is renamed into place only once its checksums match."""
    wanted = {spec.name: spec for spec in members}
    try:
        with tarfile.open(archive, "r|*") as tar:
            for info in tar:
                spec = wanted.pop(PurePosixPath(info.name).name, None) if info.isfile() else None
                if spec is None:
                    continue
                remove_stale_temporaries(Path(dest) / spec.name)  # a killed extraction's
                with atomic_path(Path(dest) / spec.name) as tmp:
                    with tar.extractfile(info) as member, open(tmp, "wb") as handle:
                        shutil.copyfileobj(member, handle, _CHUNK)
                    problem = _checksum_problem(tmp, spec.checksums)
                    if problem:
                        raise ChecksumError(
                            f"member {info.name} of {archive} has the wrong checksum ({problem}); "
                            f"it was not written. Fix the recorded value (config key "
                            f"sources.SOURCE.md5) or delete the archive to download it again"
                        )
                if not wanted:
                    break
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DatasetError(
            f"cannot read {archive} as a tar archive ({type(exc).__name__}: {exc}); delete it "
            f"to download it again"
        ) from None
    if wanted:
        raise DatasetError(
            f"{archive} has no member {', '.join(wanted)}; delete it to download it again"
        )
