"""STL-10 wired into the exercises: the configs of the linear decoder and of convolution and
pooling on STL-10, and the labeled images the convolution steps read from the split files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from shared_data import REPO_ROOT
from stl10_archive import image_bytes, make_archive

from sparseae.config import fingerprint, resolve_config, trajectory_config
from sparseae.config.rules import cnn_range
from sparseae.errors import DatasetError
from sparseae.pipeline import cnn

pytestmark = pytest.mark.fast


def test_the_stl10_configs_resolve_and_share_one_set_of_features():
    configs = [REPO_ROOT / "config" / name for name in ("config.yaml", "linear-stl10.yaml")]
    linear = resolve_config(files=configs).experiments["linear-stl10"]
    both = resolve_config(files=[*configs, REPO_ROOT / "config" / "cnn-stl10.yaml"])
    alone = resolve_config(files=[configs[0], REPO_ROOT / "config" / "cnn-stl10.yaml"])
    experiment = both.experiments["linear-stl10"]
    assert experiment == alone.experiments["linear-stl10"]
    assert fingerprint(trajectory_config(experiment)) == fingerprint(trajectory_config(linear))
    assert linear["patches"]["channels"] == 3 and linear["model"]["output"] == "linear"
    assert [cnn_range(experiment["cnn"]["images"], part) for part in ("train", "test")] == [
        (0, 2000),
        (0, 3200),
    ]


def test_labeled_images_are_the_classes_of_each_split_resized(tmp_path):
    archive = make_archive(tmp_path)  # 3 train and 2 test images of each class
    folder = tmp_path / "resources" / "stl10"
    folder.mkdir(parents=True)
    for split in ("train", "test"):
        (folder / f"{split}_X.bin").write_bytes(image_bytes(archive.images[split]))
        (folder / f"{split}_y.bin").write_bytes(archive.labels[split].astype(np.uint8).tobytes())
    images = {"source": "stl10", "split": None, "classes": ["dog", "cat"], "size": 32}
    images.update(train={"start": 1, "stop": 6}, test={"start": 0, "stop": 4})
    parts = cnn.labeled_images(images, tmp_path / "resources")

    for part, first in (("train", 1), ("test", 0)):
        kept = np.flatnonzero(np.isin(archive.labels[part], [6, 4]))  # dog 6, cat 4: file order
        X, labels = parts[part]
        assert X.shape == (32, 32, 3, images[part]["stop"] - first)
        wanted = archive.labels[part][kept[first : images[part]["stop"]]]
        np.testing.assert_array_equal(labels, np.where(wanted == 6, 1, 2))
        image = Image.fromarray(archive.images[part][..., kept[first]])
        resized = np.asarray(image.resize((32, 32), Image.BICUBIC)) / 255.0
        np.testing.assert_array_equal(X[..., 0], resized)

    images["test"]["stop"] = 5  # the archive holds 2 cats and 2 dogs of the test split
    with pytest.raises(DatasetError, match=r"cnn\.images\.test = 0\.\.5, .* holds 4 such images"):
        cnn.labeled_images(images, tmp_path / "resources")


def test_load_images_reads_only_the_stl10_images_asked_for(tmp_path):
    from sparseae.data import load_images

    archive = make_archive(tmp_path, unlabeled=5)
    (tmp_path / "unlabeled_X.bin").write_bytes(image_bytes(archive.images["unlabeled"]))
    images = load_images("stl10", tmp_path, split="unlabeled", count=3)
    np.testing.assert_array_equal(images, archive.images["unlabeled"][..., :3] / 255.0)
    with pytest.raises(DatasetError, match="holds 5 images; asked for 6"):
        load_images("stl10", tmp_path, split="unlabeled", count=6)
