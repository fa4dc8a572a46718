"""A small STL-10 archive in the real binary format, and small UFLDL ``.mat`` files, for tests
of the ``stl10`` source.

``make_archive(folder)`` writes ``stl10_binary.tar.gz`` as the official one is laid out
(``stl10_binary/train_X.bin`` …, ``class_names.txt``) with a few random images per class, and
returns what a test needs: the archive's path, the md5 of it and of each member (for the
config key ``sources.stl10.md5``), and the images (row × column × channel × n, uint8) and labels
that were written.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io

CLASS_NAMES = "airplane bird car cat deer dog horse monkey ship truck".split()


@dataclass
class Archive:
    path: Path
    md5: dict  # file name -> md5 (the archive and each member)
    images: dict  # split -> uint8 96 x 96 x 3 x n
    labels: dict  # split -> int labels 1..10 (train, test)

    def config(self, mirror_url: str) -> dict:
        """A config whose ``sources.stl10`` serves and accepts this archive."""
        return {"sources": {"stl10": {"mirrors": [mirror_url], "md5": dict(self.md5)}}}


def image_bytes(images: np.ndarray) -> bytes:
    """STL-10 layout of row × column × channel × n images: per image, channel by channel,
    each channel column-major (all rows of column 0 first)."""
    return np.ascontiguousarray(images.transpose(3, 2, 1, 0)).tobytes()


def make_archive(folder: Path, per_class: dict | None = None, unlabeled: int = 5) -> Archive:
    """Write ``folder/stl10_binary.tar.gz``: ``per_class`` images of every class per split
    (default train 3, test 2), labels in a shuffled order, ``unlabeled`` unlabeled images."""
    per_class = per_class or {"train": 3, "test": 2}
    generator = np.random.default_rng(1234)
    members, images, labels = {}, {}, {}
    for split, count in per_class.items():
        labels[split] = generator.permutation(np.repeat(np.arange(1, 11), count))
        images[split] = generator.integers(0, 256, (96, 96, 3, labels[split].size), np.uint8)
        members[f"{split}_X.bin"] = image_bytes(images[split])
        members[f"{split}_y.bin"] = labels[split].astype(np.uint8).tobytes()
    images["unlabeled"] = generator.integers(0, 256, (96, 96, 3, unlabeled), np.uint8)
    members["unlabeled_X.bin"] = image_bytes(images["unlabeled"])
    members["class_names.txt"] = "\n".join(CLASS_NAMES).encode()
    path = Path(folder) / "stl10_binary.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"stl10_binary/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in members.items()}
    md5.pop("class_names.txt")
    md5[path.name] = hashlib.md5(path.read_bytes()).hexdigest()
    return Archive(path, md5, images, labels)


def write_ufldl_mats(folder: Path, patches: int = 300, per_part: int = 8) -> dict:
    """UFLDL's own files, small, in the tutorial's layout (``scipy.io.savemat``, v5):
    ``stlSampledPatches.mat`` (``patches``: 192 × n, each column an 8 × 8 × 3 patch, R then G
    then B, each channel column-major) and ``stlTrainSubset.mat`` / ``stlTestSubset.mat``
    (64 × 64 × 3 × n images in [0, 1], n × 1 labels 1..4 in turn, ``numTrainImages``).
    Returns the patches (8 × 8 × 3 × n) and ``{part: (images, labels)}`` written."""
    generator = np.random.default_rng(7)
    made = {"patches": generator.random((8, 8, 3, patches))}
    # Each channel's 8 x 8 pixels column by column (row index fastest), channels stacked.
    columns = [made["patches"][:, :, c].transpose(1, 0, 2).reshape(64, -1) for c in range(3)]
    scipy.io.savemat(folder / "stlSampledPatches.mat", {"patches": np.vstack(columns)})
    for part in ("train", "test"):
        images, labels = generator.random((64, 64, 3, per_part)), np.arange(per_part) % 4 + 1
        made[part] = images, labels
        title = part.title()  # MATLAB doubles, labels a column
        variables = {f"{part}Images": images, f"{part}Labels": labels[:, None] * 1.0}
        variables[f"num{title}Images"] = per_part
        scipy.io.savemat(folder / f"stl{title}Subset.mat", variables)
    return made
