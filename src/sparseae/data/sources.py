"""The registry of named data sources: files and checksums, default mirrors (the config's
``sources.<name>.mirrors`` and ``.md5`` override them), loader. ``sample-photos`` and
``image-folder`` are local: nothing is downloaded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from sparseae.errors import DatasetError


@dataclass(frozen=True)
class FileSpec:
    """One file of a source: its name, recorded digests (all must match), size if known."""

    name: str
    checksums: Mapping[str, str]
    size: int | None = None


@dataclass(frozen=True)
class Source:
    """A named data source: the files to download and their mirrors, and how it is loaded.

    ``kind`` is ``"download"`` or ``"local"``; ``loader`` one of ``mat``, ``mnist``, ``stl10``,
    ``sample-photos``, ``image-folder``; ``variable`` the ``.mat`` variable; ``splits`` named
    subsets of ``files``; ``num_images`` the images per split (key ``""`` without splits);
    ``archive`` the tar file that holds ``files`` (each then extracted from it, verified)."""

    name: str
    description: str
    kind: str
    loader: str
    files: tuple[FileSpec, ...] = ()
    mirrors: tuple[str, ...] = ()
    variable: str | None = None
    whiten: bool = False
    splits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    image_side: int | None = None
    channels: int = 1  # colour planes of each image (the patch's last axis)
    num_images: Mapping[str, int] = field(default_factory=dict)
    archive: FileSpec | None = None

    def images_held(self, split: str) -> int | None:
        """Images of ``split`` (ignored by a source without splits); None when unknown."""
        return self.num_images.get(split if self.splits else "")

    def file(self, name: str) -> FileSpec:
        """The :class:`FileSpec` called ``name``."""
        for spec in self.files:
            if spec.name == name:
                return spec
        raise DatasetError(
            f"source {self.name!r} has no file {name!r}; its files: "
            f"{', '.join(f.name for f in self.files) or 'none'}"
        )

    def select(self, files=None, split: str | None = None) -> tuple[FileSpec, ...]:
        """The files needed for explicit ``files`` names, a ``split``, or all files."""
        if files is not None and split is not None:
            raise ValueError("give either files or split, not both")
        if split is not None:
            if split not in self.splits:
                raise DatasetError(
                    f"source {self.name!r} has no split {split!r}; splits: "
                    f"{', '.join(self.splits) or 'none'}"
                )
            files = self.splits[split]
        if files is None:
            return self.files
        return tuple(self.file(name) for name in files)


MNIST_FILES = {
    "train-images": "train-images-idx3-ubyte.gz",
    "train-labels": "train-labels-idx1-ubyte.gz",
    "test-images": "t10k-images-idx3-ubyte.gz",
    "test-labels": "t10k-labels-idx1-ubyte.gz",
}

# Published md5 (the values torchvision checks), size, and sha256 of the original files (none
# for train-images, which was not available to check).
_MNIST_SPECS = (
    FileSpec(MNIST_FILES["train-images"], {"md5": "f68b3c2dcbeaaa9fbdd348bbdeb94873"}, 9912422),
    FileSpec(
        MNIST_FILES["train-labels"],
        {
            "md5": "d53e105ee54ea40749a09fcbcd1e9432",
            "sha256": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        },
        28881,
    ),
    FileSpec(
        MNIST_FILES["test-images"],
        {
            "md5": "9fb629c4189551a2d022fa330f9573f3",
            "sha256": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        },
        1648877,
    ),
    FileSpec(
        MNIST_FILES["test-labels"],
        {
            "md5": "ec29112dd5afa0611ce80d1b7f02629c",
            "sha256": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        4542,
    ),
)


def _sparsenet(name: str, description: str, file: str, blob: str, variable: str, whiten: bool):
    """One of Olshausen's ten 512×512 natural images files, as the sparsenet page serves it."""
    return Source(
        name=name,
        description=description,
        kind="download",
        loader="mat",
        files=(FileSpec(file, {"git-blob": blob}),),
        mirrors=("https://www.rctn.org/bruno/sparsenet/", "http://www.rctn.org/bruno/sparsenet/"),
        variable=variable,
        whiten=whiten,
        image_side=512,
        num_images={"": 10},
    )


SOURCES: dict[str, Source] = {
    source.name: source
    for source in (
        _sparsenet(
            "ufldl-images",
            "IMAGES.mat: 10 whitened 512×512 natural images (UFLDL / Olshausen)",
            "IMAGES.mat",
            "18a1e3ab1363edeb6132e237dd84f6ea0a5c9cb2",
            "IMAGES",
            whiten=False,
        ),
        _sparsenet(
            "olshausen-raw",
            "IMAGES_RAW.mat: the 10 raw natural images, whitened here",
            "IMAGES_RAW.mat",
            "bc5042ffd6449bedd837ecf95d03cda3bf22cb7a",
            "IMAGESr",
            whiten=True,
        ),
        Source(
            name="mnist",
            description="MNIST digits: the four IDX .gz files (md5-verified)",
            kind="download",
            loader="mnist",
            files=_MNIST_SPECS,
            mirrors=(
                "https://ossci-datasets.s3.amazonaws.com/mnist/",
                "https://storage.googleapis.com/cvdf-datasets/mnist/",
                "http://yann.lecun.com/exdb/mnist/",
            ),
            splits={
                "train": (MNIST_FILES["train-images"], MNIST_FILES["train-labels"]),
                "test": (MNIST_FILES["test-images"], MNIST_FILES["test-labels"]),
            },
            image_side=28,
            num_images={"train": 60_000, "test": 10_000},
        ),
        Source(
            name="stl10",
            description="STL-10 binary: 96×96 colour images, 10 classes (md5-verified members "
            "of stl10_binary.tar.gz)",
            kind="download",
            loader="stl10",
            # Published md5 of the members (the values torchvision checks), and of the archive.
            files=(
                FileSpec("train_X.bin", {"md5": "918c2871b30a85fa023e0c44e0bee87f"}),
                FileSpec("train_y.bin", {"md5": "5a34089d4802c674881badbb80307741"}),
                FileSpec("unlabeled_X.bin", {"md5": "5242ba1fed5e4be9e1e742405eb56ca4"}),
                FileSpec("test_X.bin", {"md5": "7f263ba9f9e0b06b93213547f721ac82"}),
                FileSpec("test_y.bin", {"md5": "36f9794fa4beb8a2c72628de14fa638e"}),
            ),
            archive=FileSpec("stl10_binary.tar.gz", {"md5": "91f7769df0f17e558f3565bffb0c7dfb"}),
            mirrors=("http://ai.stanford.edu/~acoates/stl10/",),
            splits={
                "train": ("train_X.bin", "train_y.bin"),
                "test": ("test_X.bin", "test_y.bin"),
                "unlabeled": ("unlabeled_X.bin",),
            },
            image_side=96,
            channels=3,
            num_images={"train": 5_000, "test": 8_000, "unlabeled": 100_000},
        ),
        Source(
            name="sample-photos",
            description="offline default: photographs bundled with scikit-learn and "
            "matplotlib, grey, 128×128 tiles, whitened",
            kind="local",
            loader="sample-photos",
            whiten=True,
            image_side=128,
            num_images={"": 8},
        ),
        Source(
            name="image-folder",
            description="a folder of your own PNG/JPEG/TIFF images (same size), whitened",
            kind="local",
            loader="image-folder",
            whiten=True,
        ),
    )
}


def get_source(source: str | Source) -> Source:
    """Look a source up by name (a :class:`Source` passes through)."""
    if isinstance(source, Source):
        return source
    try:
        return SOURCES[source]
    except KeyError:
        raise DatasetError(
            f"unknown data source {source!r}; known sources: {', '.join(SOURCES)}"
        ) from None


def source_from_config(source: str | Source, config: Mapping | None) -> Source:
    """``source`` as ``config["sources"][name]`` sets it: ``mirrors`` (a list of URLs) replace
    the defaults; ``md5`` (``{file: 32 hex digits}``, the archive or its members) replaces the
    published checksums, e.g. for a small test archive. A bad entry is refused, naming the key."""
    src = get_source(source)
    entry = ((config or {}).get("sources") or {}).get(src.name) or {}
    if not isinstance(entry, Mapping):
        raise DatasetError(f"config key sources.{src.name} must be a mapping, got {entry!r}")
    mirrors, given = entry.get("mirrors") or src.mirrors, entry.get("md5") or {}
    if isinstance(mirrors, str) or not all(isinstance(m, str) and m for m in mirrors):
        raise DatasetError(
            f"config key sources.{src.name}.mirrors must be a list of URLs, got {mirrors!r}"
        )
    specs = {spec.name: spec for spec in (*src.files, *filter(None, [src.archive]))}
    for name, md5 in dict(given).items():
        if name not in specs or not re.fullmatch(r"[0-9a-fA-F]{32}", str(md5)):
            raise DatasetError(
                f"config key sources.{src.name}.md5.{name} = {md5!r}; allowed: 32 hex digits "
                f"for one of the files {', '.join(specs)}; fix the name or value"
            )
        specs[name] = replace(specs[name], checksums={"md5": md5.lower()}, size=None)
    files = tuple(specs[spec.name] for spec in src.files)
    archive = src.archive and specs[src.archive.name]
    return replace(src, mirrors=tuple(mirrors), files=files, archive=archive)
