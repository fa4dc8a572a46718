"""Source ``stl10``: a small archive in the real binary format (tests/stl10_archive.py), served
by the loopback HTTP mirror and fetched by the project's download code; the reader, the UFLDL
four-class subset and the unlabeled colour images."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image
from stl10_archive import image_bytes, make_archive

from sparseae.data import SOURCES, DatasetError, fetch_source, load_images, stl10
from sparseae.errors import ChecksumError, DownloadError

pytestmark = pytest.mark.fast

ARCHIVE = "stl10_binary.tar.gz"


@pytest.fixture
def archive(http_mirror):
    return make_archive(http_mirror.root)


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "stl10"


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def test_official_checksums_are_the_default():
    source = SOURCES["stl10"]
    assert source.archive.checksums == {"md5": "91f7769df0f17e558f3565bffb0c7dfb"}
    assert source.file("unlabeled_X.bin").checksums == {"md5": "5242ba1fed5e4be9e1e742405eb56ca4"}
    assert source.mirrors == ("http://ai.stanford.edu/~acoates/stl10/",)


def test_fetch_extracts_only_the_split_members_verified(archive, http_mirror, dest):
    config = archive.config(http_mirror.url)
    paths = fetch_source("stl10", dest, config, split="train", retries=0)

    assert [p.name for p in paths] == ["train_X.bin", "train_y.bin"]
    assert listing(dest) == sorted([ARCHIVE, "train_X.bin", "train_y.bin"])  # nothing else
    for path in paths:
        assert hashlib.md5(path.read_bytes()).hexdigest() == archive.md5[path.name]
    # A second split comes out of the kept archive: no second download.
    fetch_source("stl10", dest, config, split="unlabeled", retries=0)
    assert "unlabeled_X.bin" in listing(dest) and "test_X.bin" not in listing(dest)
    assert http_mirror.requests == [(ARCHIVE, 200)]


def test_official_checksums_refuse_another_archive(archive, http_mirror, dest):
    config = {"sources": {"stl10": {"mirrors": [http_mirror.url]}}}
    with pytest.raises(DownloadError, match="91f7769df0f17e558f3565bffb0c7dfb"):
        fetch_source("stl10", dest, config, split="test", retries=0)
    assert listing(dest) == []  # no half-written or unverified file


def test_a_truncated_download_leaves_nothing_and_the_next_fetch_restarts(
    archive, http_mirror, dest
):
    config = archive.config(http_mirror.url)
    http_mirror.set_fault(ARCHIVE, "truncate")
    with pytest.raises(DownloadError, match="truncated"):
        fetch_source("stl10", dest, config, split="test", retries=1, retry_wait=0)
    assert listing(dest) == []
    http_mirror.set_fault(ARCHIVE, None)
    fetch_source("stl10", dest, config, split="test", retries=0)
    assert listing(dest) == sorted([ARCHIVE, "test_X.bin", "test_y.bin"])


def test_a_member_with_the_wrong_checksum_is_not_written(archive, http_mirror, dest):
    config = archive.config(http_mirror.url)
    config["sources"]["stl10"]["md5"]["test_y.bin"] = "0" * 32
    with pytest.raises(ChecksumError, match=r"test_y\.bin.*expected 0{32}.*not written"):
        fetch_source("stl10", dest, config, split="test", retries=0)
    assert "test_y.bin" not in listing(dest)
    assert not [name for name in listing(dest) if name.startswith(".")]


@pytest.mark.parametrize(
    ("name", "value"), [("test_y.bin", "abc"), ("test_y.bin", "g" * 32), ("tset_y.bin", "0" * 32)]
)
def test_config_md5_must_be_32_hex_digits_of_a_file(name, value, tmp_path):
    config = {"sources": {"stl10": {"md5": {name: value}}}}
    with pytest.raises(DatasetError, match=rf"sources\.stl10\.md5\.{name} = '{value}'.*32 hex"):
        fetch_source("stl10", tmp_path, config, split="test")


def test_a_damaged_archive_is_refused_naming_it(http_mirror, dest):
    data = b"not a tar archive" * 100
    http_mirror.add_file(ARCHIVE, data)
    md5 = {ARCHIVE: hashlib.md5(data).hexdigest()}
    config = {"sources": {"stl10": {"mirrors": [http_mirror.url], "md5": md5}}}
    with pytest.raises(DatasetError, match=rf"cannot read .*{ARCHIVE} as a tar archive"):
        fetch_source("stl10", dest, config, split="test", retries=0)


def test_reader_places_each_byte_at_its_row_column_and_channel(archive, tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(image_bytes(archive.images["test"]))
    images = stl10.read_images(path)
    np.testing.assert_array_equal(images, archive.images["test"])
    # Independently of any transpose: byte (image i, channel k, column c, row r) of the file.
    raw = np.frombuffer(path.read_bytes(), np.uint8)
    for i, r, c, k in [(0, 1, 2, 0), (3, 95, 0, 2), (7, 0, 95, 1), (19, 40, 7, 2)]:
        assert images[r, c, k, i] == raw[i * 27648 + k * 9216 + c * 96 + r]
    assert stl10.read_images(path, 2).shape == (96, 96, 3, 2)


def test_reader_refuses_truncated_files_and_bad_labels(tmp_path):
    short = tmp_path / "train_X.bin"
    short.write_bytes(bytes(3 * 96 * 96 + 10))
    with pytest.raises(DatasetError, match=r"train_X\.bin: not an STL-10 image file"):
        stl10.read_images(short)
    labels = tmp_path / "train_y.bin"
    labels.write_bytes(bytes([1, 10, 11]))
    with pytest.raises(
        DatasetError, match=r"train_y\.bin: expected 3 labels .*outside 1\.\.10: \[11\]"
    ):
        stl10.read_labels(labels, 3)
    with pytest.raises(DatasetError, match=r"train_y\.bin: expected 4 labels"):
        stl10.read_labels(labels, 4)


def test_subset_takes_the_first_images_of_each_class_in_file_order(archive, dest):
    config = archive.config("unused")
    config["sources"]["stl10"]["mirrors"] = [str(archive.path.parent)]
    fetch_source("stl10", dest, config, split="train", retries=0)
    images, labels = stl10.load_subset(dest, "train")

    raw = archive.labels["train"]
    # The images of the four classes in file order, relabelled 1..4.
    keep = np.flatnonzero(np.isin(raw, [1, 3, 4, 6]))
    np.testing.assert_array_equal(labels, np.searchsorted([1, 3, 4, 6], raw[keep]) + 1)
    assert images.shape == (64, 64, 3, 12) and images.dtype == np.float64
    assert 0 <= images.min() and images.max() <= 1
    first = Image.fromarray(archive.images["train"][..., keep[0]]).resize((64, 64), Image.BICUBIC)
    np.testing.assert_array_equal(images[..., 0], np.asarray(first) / 255.0)
    again, again_labels = stl10.load_subset(dest, "train")
    assert np.array_equal(again, images) and np.array_equal(again_labels, labels)
    assert np.bincount(labels).tolist() == [0, 3, 3, 3, 3]
    unresized, _ = stl10.load_subset(dest, "train", ["dog"], size=None)
    np.testing.assert_array_equal(unresized * 255, archive.images["train"][..., raw == 6])
    with pytest.raises(DatasetError, match="distinct classes from airplane"):
        stl10.load_subset(dest, "train", ["dog", "wolf"])


def test_unlabeled_images_are_colour_images_in_0_1(archive, dest):
    config = archive.config(str(archive.path.parent))
    config["sources"]["stl10"]["mirrors"] = [str(archive.path.parent)]
    fetch_source("stl10", dest, config, split="unlabeled", retries=0)
    images = load_images("stl10", dest, split="unlabeled", count=3)
    assert images.shape == (96, 96, 3, 3) and images.dtype == np.float64
    np.testing.assert_array_equal(images * 255, archive.images["unlabeled"][..., :3])


def test_config_takes_stl10_checksums_and_splits_and_refuses_bad_ones():
    from sparseae.config import resolve_config
    from sparseae.errors import ConfigError

    def resolve(dataset, md5):
        patches, model = {"size": 8, "channels": 3}, {"visible_size": 192}
        experiments = {"x": {"dataset": dataset, "patches": patches, "model": model}}
        sources = {"stl10": {"md5": md5}}
        return resolve_config({"run": ["x"], "experiments": experiments, "sources": sources})

    stl10_unlabeled = {"source": "stl10", "split": "unlabeled", "num_images": 10}
    config = resolve(stl10_unlabeled, {ARCHIVE: "A" * 32})
    assert config.sources["stl10"]["md5"] == {ARCHIVE: "A" * 32}
    with pytest.raises(ConfigError, match=r"sources\.stl10\.md5\.stl10_binary\.tar\.gz.*32 hex"):
        resolve(stl10_unlabeled, {ARCHIVE: "A" * 31})
    with pytest.raises(ConfigError, match="source 'mnist' has splits train, test; allowed"):
        resolve({"source": "mnist", "split": "unlabeled"}, {})
    with pytest.raises(ConfigError, match="num_images' = 100001"):
        resolve({**stl10_unlabeled, "num_images": 100_001}, {})
