"""Loaders on real inputs: IDX files (../shared/data), .mat files written with scipy, image
folders written with Pillow, and the bundled sample photographs."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image
from shared_data import shared_file

from sparseae.data import DatasetError, dataset_checksum, load_images, load_mnist
from sparseae.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from sparseae.data.images import SAMPLE_TILE, load_mat_images, sample_photo_files
from sparseae.data.whitening import whiten_images

pytestmark = pytest.mark.fast

T10K_LABELS = "t10k-labels-idx1-ubyte.gz"
T10K_IMAGES = "t10k-images-idx3-ubyte.gz"


# --------------------------------------------------------------------------- IDX


def test_read_idx_gz_and_plain_agree():
    gz = shared_file(f"data/{T10K_LABELS}")
    labels = read_idx(gz, LABELS_MAGIC)
    assert labels.shape == (10000,) and labels.dtype == np.uint8
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_read_idx_plain_file(tmp_path):
    gz = shared_file(f"data/{T10K_LABELS}")
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(gzip.decompress(gz.read_bytes()))
    np.testing.assert_array_equal(read_idx(plain), read_idx(gz))


def _idx(tmp_path, header: bytes, payload: bytes, name="x.idx"):
    path = tmp_path / name
    path.write_bytes(header + payload)
    return path


def test_read_idx_checks_magic_and_size(tmp_path):
    good = _idx(tmp_path, bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") * 3, bytes(8))
    assert read_idx(good, IMAGES_MAGIC).shape == (2, 2, 2)

    with pytest.raises(DatasetError, match=rf"{good}: magic number 2051, expected 2049"):
        read_idx(good, LABELS_MAGIC)

    bad_magic = _idx(tmp_path, (2050 + 0x0100_0000).to_bytes(4, "big"), b"", "bad.idx")
    with pytest.raises(DatasetError, match=rf"{bad_magic} is not an IDX file"):
        read_idx(bad_magic)

    short = _idx(tmp_path, bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big"), bytes(7), "short.idx")
    with pytest.raises(
        DatasetError,
        match=rf"{short}: header says shape \(10,\) \(10 data bytes\) "
        r"but the file holds 7",
    ):
        read_idx(short)

    long = _idx(tmp_path, bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big"), bytes(4), "long.idx")
    with pytest.raises(DatasetError, match="holds 4 data bytes"):
        read_idx(long)


def test_read_idx_big_endian_types(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    path = _idx(tmp_path, bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big"), values.tobytes())
    out = read_idx(path)
    assert out.tolist() == [1, -2, 70000] and out.dtype.byteorder in ("=", "<", "|")


def test_read_idx_damaged_gzip_and_missing(tmp_path):
    gz = shared_file(f"data/{T10K_LABELS}")
    damaged = tmp_path / "d.gz"
    damaged.write_bytes(gz.read_bytes()[:2000])
    with pytest.raises(DatasetError, match=rf"{damaged} is a damaged gzip file"):
        read_idx(damaged)
    with pytest.raises(DatasetError, match="does not exist"):
        read_idx(tmp_path / "nothing.gz")


# --------------------------------------------------------------------------- MNIST


def test_load_mnist_test_split_facts(shared_dir):
    shared_file(f"data/{T10K_IMAGES}")
    X, labels = load_mnist(shared_dir / "data", "test", num_images=100)
    assert X.shape == (784, 100) and labels.shape == (100,)
    assert round(X[:, 0].sum() * 255) == 18454  # ../shared/data/README.md
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    with pytest.raises(DatasetError, match=r"num_images must be in 1…10000"):
        load_mnist(shared_dir / "data", "test", num_images=10001)
    with pytest.raises(DatasetError, match="split must be one of train, test"):
        load_mnist(shared_dir / "data", "t10k")


def test_load_mnist_reads_decompressed_files_and_checks_counts(tmp_path):
    for name in (T10K_IMAGES, T10K_LABELS):
        plain = tmp_path / name.removesuffix(".gz")
        plain.write_bytes(gzip.decompress(shared_file(f"data/{name}").read_bytes()))
    X, labels = load_mnist(tmp_path, "test")
    assert X.shape == (784, 10000) and X.mean() * 255 == pytest.approx(33.791224, abs=1e-6)

    # Labels of another split: the counts disagree and the error names both files.
    shutil.copy(shared_file("data/train-labels-idx1-ubyte.gz"), tmp_path / T10K_LABELS)
    with pytest.raises(DatasetError, match="has 60000 labels but .* has 10000 images"):
        load_mnist(tmp_path, "test")


def test_load_mnist_missing_files_named(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz does not exist"):
        load_mnist(tmp_path, "train")


# --------------------------------------------------------------------------- .mat


@pytest.fixture
def stack():
    rng = np.random.default_rng(3)
    return rng.standard_normal((32, 24, 3))


def test_mat_v5_ufldl_images_loaded_unchanged(tmp_path, stack):
    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGES": stack, "other": np.ones(2)})
    out = load_images("ufldl-images", tmp_path)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, stack)
    np.testing.assert_array_equal(load_images("ufldl-images", path=path), stack)


def test_mat_v5_olshausen_raw_is_whitened(tmp_path, stack):
    path = tmp_path / "IMAGES_RAW.mat"
    scipy.io.savemat(path, {"IMAGESr": stack.astype(np.float32)})
    out = load_images("olshausen-raw", tmp_path)
    np.testing.assert_allclose(out, whiten_images(stack.astype(np.float32)), rtol=0, atol=1e-12)
    assert np.var(out, axis=(0, 1), ddof=1).mean() == pytest.approx(0.1)
    np.testing.assert_array_equal(
        load_images("olshausen-raw", tmp_path, whiten=False), stack.astype(np.float32)
    )


def test_mat_missing_variable_names_file_and_variables(tmp_path, stack):
    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGESr": stack, "labels": np.arange(3)})
    with pytest.raises(DatasetError) as info:
        load_images("ufldl-images", tmp_path)
    assert str(info.value) == (
        f"{path} has no variable 'IMAGES'; variables present: IMAGESr, labels"
    )


def test_mat_v73_gives_clear_message(tmp_path):
    # The header MATLAB writes for -v7.3 files (a 512-byte text block, then HDF5).
    path = tmp_path / "IMAGES.mat"
    header = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 "
        b"HDF5 schema 1.00 ."
    )
    path.write_bytes(header.ljust(512, b" ") + b"\x89HDF\r\n\x1a\n" + bytes(64))
    # Without h5py (the project does not depend on it) the message names the format; with
    # h5py this header-only file is refused as an unreadable v7.3 file.
    expected = r"v7\.3 file" if importlib.util.find_spec("h5py") else r"MATLAB v7\.3 \(HDF5\) file"
    with pytest.raises(DatasetError, match=expected) as info:
        load_images("ufldl-images", tmp_path)
    assert str(path) in str(info.value)


def test_mat_non_finite_and_garbage(tmp_path, stack):
    stack[1, 2, 0] = np.nan
    stack[3, 4, 2] = np.inf
    path = tmp_path / "IMAGES.mat"
    scipy.io.savemat(path, {"IMAGES": stack})
    with pytest.raises(DatasetError, match=rf"{path}: variable 'IMAGES' contains 2 non-finite"):
        load_images("ufldl-images", tmp_path)
    path.write_bytes(b"this is not a mat file at all" * 10)
    with pytest.raises(DatasetError, match=rf"cannot read {path} as a MATLAB .mat file"):
        load_images("ufldl-images", tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        load_images("ufldl-images", tmp_path / "nowhere")


def test_mat_sparsenet_column_layout(tmp_path, stack):
    # Old sparsenet files hold one N²-pixel image per column.
    square = stack[:24, :24, :]
    path = tmp_path / "cols.mat"
    scipy.io.savemat(path, {"IMAGES": square.reshape(24 * 24, 3, order="F")})
    np.testing.assert_array_equal(load_mat_images(path, "IMAGES"), square)
    scipy.io.savemat(path, {"IMAGES": square[:, :, 0]})
    np.testing.assert_array_equal(load_mat_images(path, "IMAGES"), square[:, :, :1])


# --------------------------------------------------------------------------- image folder


def _grey_png(path, values):
    Image.fromarray(values.astype(np.uint8), mode="L").save(path)


def test_image_folder_reads_grey_rgb_and_16bit(tmp_path):
    rng = np.random.default_rng(5)
    grey = rng.integers(0, 256, (20, 30))
    rgb = rng.integers(0, 256, (20, 30, 3))
    deep = rng.integers(0, 65536, (20, 30))
    _grey_png(tmp_path / "a.png", grey)
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(tmp_path / "b.jpg", quality=100)
    Image.fromarray(rgb.astype(np.uint8), mode="RGB").save(tmp_path / "c.tif")
    Image.fromarray(deep.astype(np.uint16)).save(tmp_path / "d.png")
    (tmp_path / "notes.txt").write_text("ignored")
    _grey_png(tmp_path / ".hidden.png", grey)

    raw = load_images("image-folder", tmp_path, whiten=False)
    assert raw.shape == (20, 30, 4) and raw.dtype == np.float64
    np.testing.assert_array_equal(raw[:, :, 0], grey / 255)
    np.testing.assert_allclose(raw[:, :, 2], rgb @ [0.299, 0.587, 0.114] / 255, atol=1e-12)
    np.testing.assert_array_equal(raw[:, :, 3], deep / 65535)  # each file by its own depth
    whitened = load_images("image-folder", path=tmp_path)
    np.testing.assert_array_equal(whitened, whiten_images(raw))


def test_image_folder_bad_inputs(tmp_path):
    with pytest.raises(DatasetError, match="holds no images"):
        load_images("image-folder", tmp_path)
    _grey_png(tmp_path / "a.png", np.zeros((8, 8)))
    _grey_png(tmp_path / "b.png", np.zeros((8, 9)))
    with pytest.raises(DatasetError, match=r"different sizes \(a.png 8×8, b.png 8×9\)"):
        load_images("image-folder", tmp_path)
    (tmp_path / "b.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DatasetError, match=rf"cannot read image file {tmp_path / 'b.png'}"):
        load_images("image-folder", tmp_path)
    Image.fromarray(np.full((8, 8), np.nan, dtype=np.float32)).save(tmp_path / "b.tif")
    (tmp_path / "b.png").unlink()
    with pytest.raises(DatasetError, match=r"b.tif contains 64 non-finite values"):
        load_images("image-folder", tmp_path)
    with pytest.raises(DatasetError, match="needs a folder"):
        load_images("image-folder")


# --------------------------------------------------------------------------- sample photos


def test_sample_photos_offline_shapes_and_bit_identical():
    files = sample_photo_files()
    names = [p.name for p in files]
    assert names[:2] == ["china.jpg", "flower.jpg"]
    expected = 2 + 2 + (4 if "grace_hopper.jpg" in names else 0)  # documented tiling
    first = load_images("sample-photos")
    second = load_images("sample-photos")
    assert first.shape == (SAMPLE_TILE, SAMPLE_TILE, expected) == (128, 128, expected)
    assert first.dtype == np.float64
    assert hashlib.sha256(first.tobytes()).digest() == hashlib.sha256(second.tobytes()).digest()
    assert np.var(first, axis=(0, 1), ddof=1).mean() == pytest.approx(0.1, rel=1e-12)
    # Real photographs, not flat or identical tiles.
    raw = load_images("sample-photos", whiten=False)
    assert raw.min() >= 0 and raw.max() <= 1
    assert all(raw[:, :, i].std() > 0.05 for i in range(expected))
    assert len({raw[:, :, i].tobytes() for i in range(expected)}) == expected


def test_dataset_checksum_is_stable_and_follows_content(tmp_path, stack):
    assert dataset_checksum("sample-photos") == dataset_checksum("sample-photos")
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        scipy.io.savemat(folder / "IMAGES.mat", {"IMAGES": stack})
    # Same bytes in another folder: same checksum (locations do not enter).
    assert dataset_checksum("ufldl-images", a) == dataset_checksum("ufldl-images", b)
    assert dataset_checksum("ufldl-images", a).startswith("sha256:")
    assert dataset_checksum("ufldl-images", a) != dataset_checksum(
        "olshausen-raw", path=a / "IMAGES.mat"
    )
    scipy.io.savemat(b / "IMAGES.mat", {"IMAGES": stack + 1})
    assert dataset_checksum("ufldl-images", a) != dataset_checksum("ufldl-images", b)
    with pytest.raises(DatasetError, match="fetch source 'mnist' first"):
        dataset_checksum("mnist", tmp_path, split="test")
