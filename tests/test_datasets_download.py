"""Verified downloads against a real loopback HTTP mirror (tests/http_mirror.py).

The mirror serves the real MNIST files of ../shared/data; facts asserted come from
../shared/data/README.md (counts, first labels, per-class counts, pixel mean 33.791224,
image 0 sum 18454) and the published md5 values.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
from http_mirror import MNIST_TEST_FILES, MirrorServer

from sparseae.data import (
    SOURCES,
    DatasetError,
    fetch,
    fetch_source,
    file_digests,
    load_mnist,
)
from sparseae.data.idx import read_idx
from sparseae.data.sources import source_from_config
from sparseae.errors import ChecksumError, DownloadError

pytestmark = pytest.mark.fast

IMAGES, LABELS = MNIST_TEST_FILES
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
# Published md5 of the gz files (as torchvision checks them).
MD5 = {
    IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
}


def everything_in(folder):
    """All entries of a folder, hidden temporaries included."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fetch_test_split_from_mirror_verifies_and_parses(mnist_mirror, tmp_path):
    dest = tmp_path / "mnist"
    paths = fetch("mnist", dest, [mnist_mirror.url], split="test", retries=0)

    assert [p.name for p in paths] == [IMAGES, LABELS]
    # Only what the split needs was requested: the mirror has no training images.
    assert sorted(name for name, _ in mnist_mirror.requests) == sorted([IMAGES, LABELS])
    assert everything_in(dest) == sorted([IMAGES, LABELS])
    for path in paths:
        assert file_digests(path, ["md5"])["md5"] == MD5[path.name]

    X, labels = load_mnist(dest, "test")
    assert X.shape == (784, 10000) and X.dtype == np.float64
    assert labels.dtype == np.int64
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert X.min() == 0.0 and X.max() == 1.0
    assert X.mean() * 255 == pytest.approx(33.791224, abs=1e-6)
    assert round(X[:, 0].sum() * 255) == 18454
    # Column-major flattening: compare with the raw row-major bytes of image 0.
    raw = np.frombuffer(gzip.decompress(paths[0].read_bytes()), np.uint8, offset=16)
    image0 = raw[:784].reshape(28, 28)
    np.testing.assert_array_equal(X[:, 0] * 255, image0.flatten(order="F"))
    assert not np.array_equal(X[:, 0] * 255, image0.ravel())  # a row-major mix-up would differ


def test_train_labels_file_by_name(mnist_mirror, tmp_path):
    (path,) = fetch("mnist", tmp_path, [mnist_mirror.url], files=[TRAIN_LABELS], retries=0)
    labels = read_idx(path)
    assert labels.shape == (60000,)
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(labels).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]


def test_present_verified_file_is_not_downloaded_again(mnist_mirror, tmp_path):
    fetch("mnist", tmp_path, [mnist_mirror.url], files=[LABELS], retries=0)
    mtime = (tmp_path / LABELS).stat().st_mtime_ns
    fetch("mnist", tmp_path, [mnist_mirror.url], files=[LABELS], retries=0)
    assert mnist_mirror.downloads_of(LABELS) == 1
    assert (tmp_path / LABELS).stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("truncate", "truncated: received 2271 of 4542 bytes"),
        ("corrupt", f"checksum mismatch (md5: expected {MD5[LABELS]}, found "),
        ("404", "HTTP 404"),
        ("500", "HTTP 500"),
    ],
)
def test_faulty_download_is_explained_and_leaves_no_file(mnist_mirror, tmp_path, fault, reason):
    mnist_mirror.set_fault(LABELS, fault)
    dest = tmp_path / "mnist"
    with pytest.raises(DownloadError) as info:
        fetch("mnist", dest, [mnist_mirror.url], files=[LABELS], retries=0)
    message = str(info.value)
    assert f"{mnist_mirror.url}{LABELS}" in message
    assert reason in message
    # How to place the file by hand: exact path and checksum.
    assert str((dest / LABELS).resolve()) in message
    assert f"md5 {MD5[LABELS]}" in message
    assert everything_in(dest) == []


def test_stalled_download_times_out_and_leaves_no_file(mnist_mirror, tmp_path):
    mnist_mirror.set_fault(IMAGES, "stall")
    dest = tmp_path / "mnist"
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"timed out: no data for 1 s \(after 1024 bytes\)"):
        fetch("mnist", dest, [mnist_mirror.url], files=[IMAGES], timeout=1.0, retries=0)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 5.0
    assert everything_in(dest) == []


def test_network_failures_are_retried_but_404_is_not(mnist_mirror, tmp_path):
    mnist_mirror.set_fault(LABELS, "truncate")
    with pytest.raises(DownloadError) as info:
        fetch("mnist", tmp_path, [mnist_mirror.url], files=[LABELS], retries=2, retry_wait=0.01)
    assert mnist_mirror.downloads_of(LABELS) == 3
    assert "(attempt 3)" in str(info.value)

    mnist_mirror.set_fault(LABELS, "404")
    with pytest.raises(DownloadError):
        fetch("mnist", tmp_path, [mnist_mirror.url], files=[LABELS], retries=2, retry_wait=0.01)
    assert mnist_mirror.downloads_of(LABELS) == 3 + 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_later_mirror_is_used_after_failing_ones(mnist_mirror, tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}/"
    with MirrorServer(tmp_path / "empty") as empty:
        paths = fetch(
            "mnist",
            tmp_path / "d",
            [dead, empty.url, mnist_mirror.url],
            split="test",
            retries=1,
            retry_wait=0.01,
        )
        assert empty.downloads_of(LABELS) == 1  # a 404 is not retried
    assert [p.name for p in paths] == [IMAGES, LABELS]
    assert file_digests(paths[1], ["md5"])["md5"] == MD5[LABELS]


def test_error_after_last_mirror_names_every_url(tmp_path):
    dead = f"http://127.0.0.1:{_closed_port()}/"
    with MirrorServer(tmp_path / "empty") as empty:
        with pytest.raises(DownloadError) as info:
            fetch("mnist", tmp_path / "d", [dead, empty.url], files=[LABELS], retries=0)
    message = str(info.value)
    assert f"{dead}{LABELS} (attempt 1): cannot connect" in message
    assert f"{empty.url}{LABELS} (attempt 1): HTTP 404" in message


def test_corrupt_cached_file_is_reported_with_both_checksums_and_kept(mnist_mirror, tmp_path):
    cached = tmp_path / LABELS
    cached.write_bytes(b"not the labels")
    actual = file_digests(cached, ["md5"])["md5"]
    with pytest.raises(ChecksumError) as info:
        fetch("mnist", tmp_path, [mnist_mirror.url], files=[LABELS])
    message = str(info.value)
    assert str(cached) in message and MD5[LABELS] in message and actual in message
    assert cached.read_bytes() == b"not the labels"
    assert mnist_mirror.requests == []


def test_file_placed_by_hand_is_verified_and_used(mnist_mirror, tmp_path):
    with pytest.raises(DownloadError) as info:
        fetch("mnist", tmp_path, [], files=[LABELS])
    assert str((tmp_path / LABELS).resolve()) in str(info.value)
    shutil.copy(mnist_mirror.root / LABELS, tmp_path / LABELS)
    assert fetch("mnist", tmp_path, [], files=[LABELS]) == [tmp_path / LABELS]


def test_interrupted_download_leaves_no_file(mnist_mirror, tmp_path):
    def interrupt(name, done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fetch("mnist", tmp_path / "d", [mnist_mirror.url], files=[IMAGES], progress=interrupt)
    assert everything_in(tmp_path / "d") == []


def test_progress_reports_bytes_and_log_line(mnist_mirror, tmp_path, caplog):
    seen = []
    with caplog.at_level("INFO", logger="sparseae.datasets"):
        fetch(
            "mnist",
            tmp_path,
            [mnist_mirror.url],
            files=[LABELS],
            progress=lambda *a: seen.append(a),
        )
    assert seen[-1] == (LABELS, 4542, 4542)
    assert all(b >= a for (_, a, _), (_, b, _) in zip(seen, seen[1:], strict=False))
    assert any("4.5 kB of 4.5 kB" in r.message and "/s)" in r.message for r in caplog.records)


def test_stale_temporaries_are_removed_fresh_ones_kept(mnist_mirror, tmp_path):
    stale, fresh = tmp_path / f".{LABELS}.tmp-old.gz", tmp_path / f".{LABELS}.tmp-new.gz"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fetch("mnist", tmp_path, [mnist_mirror.url], files=[LABELS])
    assert not stale.exists() and fresh.exists()


def test_git_blob_digest_matches_git(mnist_mirror, tmp_path):
    path = mnist_mirror.root / LABELS
    # Blob id recorded in ../shared/data/README.md; git itself must agree.
    assert (
        file_digests(path, ["git-blob"])["git-blob"] == "a7e141541c1d08d3f2ed01eae03e644f9e2fd0c5"
    )
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
        assert out.stdout.strip() == "a7e141541c1d08d3f2ed01eae03e644f9e2fd0c5"


def test_checksums_with_several_algorithms_must_all_match(tmp_path, http_mirror):
    data = b"some bytes\n"
    (http_mirror.root / "f.bin").write_bytes(data)
    good = file_digests(http_mirror.root / "f.bin", ["md5", "sha256"])
    from sparseae.data.download import download_file

    with pytest.raises(DownloadError, match="sha256: expected 0{64}, found " + good["sha256"]):
        download_file(
            "f.bin", tmp_path, [http_mirror.url], {"md5": good["md5"], "sha256": "0" * 64}
        )
    assert download_file("f.bin", tmp_path, [http_mirror.url], good).read_bytes() == data


def test_local_sources_need_no_download(tmp_path):
    photos = fetch("sample-photos", None)
    assert photos and all(p.is_file() for p in photos)
    with pytest.raises(DatasetError, match="does not exist"):
        fetch("image-folder", tmp_path / "missing")
    with pytest.raises(DatasetError, match="holds no images"):
        fetch("image-folder", tmp_path)
    (tmp_path / "a.png").write_bytes(b"")
    assert fetch("image-folder", tmp_path) == [tmp_path / "a.png"]


def test_unknown_names_are_refused(tmp_path):
    with pytest.raises(DatasetError, match="unknown data source 'mnistt'; known sources: "):
        fetch("mnistt", tmp_path)
    with pytest.raises(DatasetError, match="no split 'validation'; splits: train, test"):
        fetch("mnist", tmp_path, split="validation")
    with pytest.raises(DatasetError, match="no file 'x.gz'"):
        fetch("mnist", tmp_path, files=["x.gz"])


def test_mirrors_come_from_config(mnist_mirror, tmp_path):
    config = {"sources": {"mnist": {"mirrors": [mnist_mirror.url]}}}
    assert source_from_config("mnist", config).mirrors == (mnist_mirror.url,)
    assert source_from_config("mnist", {}).mirrors == SOURCES["mnist"].mirrors
    fetch_source("mnist", tmp_path, config, split="test", retries=0)
    assert mnist_mirror.downloads_of(IMAGES) == 1
    with pytest.raises(DatasetError, match="sources.mnist.mirrors must be a list of URLs"):
        source_from_config("mnist", {"sources": {"mnist": {"mirrors": "http://x/"}}})


def test_default_mirrors_are_recorded_for_downloads():
    for source in SOURCES.values():
        if source.kind == "download":
            assert source.mirrors and all(
                m.startswith(("http://", "https://")) for m in source.mirrors
            )
            assert all(spec.checksums for spec in source.files)


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal, to see the live progress line."""

    def isatty(self):
        return True


def test_live_progress_line_only_on_a_terminal(mnist_mirror, tmp_path):
    from sparseae.data.download import download_file

    spec = SOURCES["mnist"].file(LABELS)
    terminal, plain = _Terminal(), io.StringIO()
    download_file(LABELS, tmp_path / "a", [mnist_mirror.url], spec.checksums, stream=terminal)
    download_file(LABELS, tmp_path / "b", [mnist_mirror.url], spec.checksums, stream=plain)
    assert f"\r{LABELS}: " in terminal.getvalue() and "of 4.5 kB" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\033[K")  # the live line is cleared at the end
    assert plain.getvalue() == ""


def test_local_folder_mirror(mnist_mirror, tmp_path):
    # A mirror without a scheme is a folder (e.g. a shared filesystem on a cluster).
    with pytest.raises(DownloadError, match="No such file"):
        fetch("mnist", tmp_path / "x", [str(tmp_path / "nowhere")], files=[LABELS])
    (path,) = fetch("mnist", tmp_path / "y", [str(mnist_mirror.root)], files=[LABELS])
    assert file_digests(path, ["md5"])["md5"] == MD5[LABELS]


def test_git_blob_checksum_errors_say_how_to_compute_it(tmp_path):
    (tmp_path / "IMAGES.mat").write_bytes(b"an unrelated file")
    with pytest.raises(ChecksumError) as info:
        fetch("ufldl-images", tmp_path, [])
    message = str(info.value)
    assert "git-blob: expected 18a1e3ab1363edeb6132e237dd84f6ea0a5c9cb2, found " in message
    assert "git hash-object" in message
    with pytest.raises(DownloadError, match="git hash-object"):
        fetch("olshausen-raw", tmp_path, [])
