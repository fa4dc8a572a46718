"""Image loaders (MATLAB ``.mat`` files, image folders, the sample photographs shipped in
installed packages): float64 ``H × W × N``, non-finite values refused, naming the file."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparseae.errors import DatasetError
from sparseae.model.convolution import mean_pool

#: File suffixes read from an image folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# Pictures in formats that are not read (GIF may be animated; convert the others to PNG).
UNREAD_IMAGE_SUFFIXES = (".gif", ".bmp", ".webp", ".ppm", ".pgm", ".pbm", ".heic", ".jp2")

# BT.601 luma weights, in float64 so the grey values are not rounded to 8 bits.
_LUMA = np.array([0.299, 0.587, 0.114])

SAMPLE_DOWNSAMPLE = 2
SAMPLE_TILE = 128
# Bump when the recipe changes, so dataset checksums (and MLflow params) change with it.
SAMPLE_RECIPE = f"grey-bt601/downsample{SAMPLE_DOWNSAMPLE}/tiles{SAMPLE_TILE}/v1"

_MAT_V73_SIGNATURE = b"MATLAB 7.3 MAT-file"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _to_image_stack(array: np.ndarray, path: Path, variable: str) -> np.ndarray:
    """Bring a .mat variable to H × W × N float64, with checks naming the file."""
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise DatasetError(
            f"{path}: variable {variable!r} has type {array.dtype}, "
            f"expected a real numeric array of images"
        )
    if array.ndim == 2:
        side = int(round(np.sqrt(array.shape[0])))
        if side >= 8 and side * side == array.shape[0] and array.shape[1] < array.shape[0]:
            # Old sparsenet layout: one N²-pixel image per column, column-major.
            array = array.reshape(side, side, array.shape[1], order="F")
        else:
            array = array[:, :, None]
    if array.ndim != 3 or min(array.shape) == 0:
        raise DatasetError(
            f"{path}: variable {variable!r} has shape {array.shape}, expected H × W × N images"
        )
    stack = np.asarray(array, dtype=np.float64)
    bad = np.count_nonzero(~np.isfinite(stack))
    if bad:
        raise DatasetError(
            f"{path}: variable {variable!r} contains {bad} non-finite values (NaN or inf)"
        )
    return stack


def load_mat_images(path: str | os.PathLike, variable: str) -> np.ndarray:
    """The image stack in variable ``variable`` of a ``.mat`` file (v7.3/HDF5 needs ``h5py``)."""
    return _to_image_stack(read_mat(path, [variable])[variable], Path(path), variable)


def read_mat(path: str | os.PathLike, variables: Sequence[str]) -> dict[str, np.ndarray]:
    """The arrays ``variables`` of a MATLAB ``.mat`` file: v5/v7 by ``scipy.io.loadmat``, v7.3
    (HDF5) only with ``h5py``. A missing file or variable or an unreadable file is refused."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    with open(path, "rb") as handle:
        head = handle.read(520)
    v73 = head.startswith(_MAT_V73_SIGNATURE) or head[512:520] == _HDF5_SIGNATURE
    if v73 and importlib.util.find_spec("h5py") is None:
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy.io.loadmat cannot read. Re-save "
            f"it as v7 (MATLAB/Octave: load it, then `save -v7 file.mat {' '.join(variables)}`), "
            f"or install h5py to read it directly."
        )
    try:
        found = _load_mat_v73(path, variables) if v73 else scipy.io.loadmat(path)
    except Exception as exc:  # scipy: ValueError, MatReadError...; v7.3 went to h5py above
        raise DatasetError(
            f"cannot read {path} as a MATLAB {'v7.3 ' * v73}.mat file: {type(exc).__name__}: {exc}"
        ) from None
    for variable in variables:
        if variable not in found:
            present = ", ".join(k for k in found if k[0] not in "_#") or "none"
            raise DatasetError(f"{path} has no variable {variable!r}; variables present: {present}")
    return {variable: found[variable] for variable in variables}


def _load_mat_v73(path: Path, variables: Sequence[str]) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as handle:
        # HDF5 stores MATLAB's column-major arrays with the axes reversed.
        return {k: np.asarray(handle[k]).T if k in variables else None for k in handle}


#: Largest image read from a folder, in pixels (512 MB as float64); refused before decoding.
MAX_IMAGE_PIXELS = 64 * 1024 * 1024

_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ALPHA = ("LA", "PA", "RGBA", "RGBa", "La")
_EIGHT_BIT = ("L", "P", "RGB", "CMYK", "YCbCr", "LAB", "HSV", *_ALPHA)
#: Pillow modes read, and the full-scale value of each image's own bit depth that maps it to
#: [0, 1], so mixed 8- and 16-bit folders give comparable values ("F" must lie in [0, 1]).
MODE_SCALE = {
    "1": 1.0,
    **dict.fromkeys(_EIGHT_BIT, 255.0),
    **dict.fromkeys(_SIXTEEN_BIT, 65535.0),
    "F": 1.0,
}


@contextlib.contextmanager
def _opened(path: Path):
    """The opened, not yet decoded image; anything unreadable raises DatasetError."""
    from PIL import Image, UnidentifiedImageError

    try:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = limit
        with image:
            width, height = image.size
            if image.mode not in MODE_SCALE:
                raise DatasetError(
                    f"image file {path} has the pixel mode {image.mode!r}, which sparseae does "
                    f"not read; allowed: 1-, 8- or 16-bit grey or colour (modes "
                    f"{', '.join(MODE_SCALE)})"
                )
            if width * height > MAX_IMAGE_PIXELS:
                raise DatasetError(
                    f"image file {path} is {width}×{height} = {width * height:,} pixels, more "
                    f"than the {MAX_IMAGE_PIXELS:,} sparseae reads "
                    f"({MAX_IMAGE_PIXELS * 8 / 2**20:,.0f} MB as float64); downscale or crop it"
                )
            if (frames := getattr(image, "n_frames", 1)) > 1:
                raise DatasetError(
                    f"image file {path} holds {frames} frames (pages); sparseae reads single "
                    f"images: save each frame as its own file"
                )
            yield image
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist") from None
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"image file {path} is too large to read safely: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot read image file {path}: {exc}") from None


def check_image_header(path: str | os.PathLike) -> tuple[int, int]:
    """``(rows, cols)`` of an image, refused as :func:`read_grey_image` would without decoding."""
    with _opened(Path(path)) as image:
        width, height = image.size
    return height, width


def read_grey_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as a 2-D float64 grey image in [0, 1] (colour by BT.601 luma)."""
    path = Path(path)
    with _opened(path) as image:
        image.load()
        mode = image.mode
        if mode in _ALPHA or (mode == "P" and "transparency" in image.info):
            alpha = np.asarray(image.convert("RGBA"))[..., 3]
            if alpha.min() < 255:
                raise DatasetError(
                    f"image file {path} has {int(np.count_nonzero(alpha < 255))} "
                    f"transparent pixels; sparseae reads grey values and would ignore the "
                    f"transparency: flatten the image onto a background first"
                )
        if mode in (*_SIXTEEN_BIT, "F", "1", "L"):
            grey = np.asarray(image, dtype=np.float64)
        else:
            rgb = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
            grey = rgb @ _LUMA
            mode = "RGB/1"
    if grey.ndim != 2 or grey.size == 0:
        raise DatasetError(f"image file {path} decoded to shape {grey.shape}, not a 2-D image")
    bad = np.count_nonzero(~np.isfinite(grey))
    if bad:
        raise DatasetError(f"image file {path} contains {bad} non-finite values")
    if mode != "RGB/1":
        scale = MODE_SCALE[mode]
        if grey.min() < 0 or grey.max() > scale:
            depth = "floating-point" if mode == "F" else f"mode {mode}"
            raise DatasetError(
                f"image file {path} ({depth}) has values in [{grey.min():g}, {grey.max():g}]; "
                f"allowed: 0..{scale:g} (saved as 8- or 16-bit, or floats in [0, 1])"
            )
        grey = grey / scale
    return grey


def list_image_folder(folder: str | os.PathLike) -> list[Path]:
    """Image files (by suffix, sorted by name, hidden files skipped) in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist or is not a folder")
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise DatasetError(f"image folder {folder} cannot be listed: {exc.strerror}") from None
    visible = [p for p in entries if not p.name.startswith(".")]
    files = sorted(p for p in visible if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    # Nothing that looks like an image is skipped in silence.
    refused = sorted(
        f"{p.name} ({'not a readable file' if p.suffix.lower() in IMAGE_SUFFIXES else 'format'})"
        for p in visible
        if (p.suffix.lower() in IMAGE_SUFFIXES and not p.is_file())
        or p.suffix.lower() in UNREAD_IMAGE_SUFFIXES
    )
    if refused:
        raise DatasetError(
            f"image folder {folder} holds entries that would be skipped: {', '.join(refused)}; "
            f"images are read from regular {'/'.join(IMAGE_SUFFIXES)} files only: convert or "
            f"move these out of the folder"
        )
    if not files:
        raise DatasetError(
            f"image folder {folder} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return files


def load_image_folder(folder: str | os.PathLike) -> np.ndarray:
    """Read every image of a folder into an H × W × N grey stack; mixed sizes are refused."""
    files = list_image_folder(folder)
    images = [read_grey_image(p) for p in files]
    if len({img.shape for img in images}) > 1:
        shapes = {path: image.shape for path, image in zip(files, images, strict=True)}
        raise DatasetError(different_sizes(folder, shapes))
    return np.stack(images, axis=2)


def different_sizes(folder, sizes: dict[Path, tuple[int, int]]) -> str:
    """The message for images of ``(rows, cols)`` ``sizes``, naming those an EXIF tag turns."""
    from PIL import Image

    listing = ", ".join(f"{p.name} {r}×{c}" for p, (r, c) in sizes.items())
    for path in sizes:
        with contextlib.suppress(Exception), Image.open(path) as image:
            if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # orientations turned by 90°
                listing += (
                    f"; {path.name}: an EXIF orientation tag turns it by 90° in viewers, but "
                    f"sparseae reads pixels as stored: rotate them (e.g. exiftran -ai)"
                )
    return f"images in {folder} have different sizes ({listing}); crop or resize them to one size"


def sample_photo_files() -> list[Path]:
    """Paths of the bundled photographs used by ``sample-photos``, in their fixed order."""
    files = []
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        folder = Path(spec.origin).parent / "datasets" / "images"
        files += [folder / "china.jpg", folder / "flower.jpg"]
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        files.append(Path(spec.origin).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    found = [p for p in files if p.is_file()]
    if not found:
        raise DatasetError(
            "no sample photographs found: expected scikit-learn's "
            "datasets/images/*.jpg or matplotlib's sample_data/grace_hopper.jpg"
        )
    return found


def _centred_tiles(image: np.ndarray, tile: int) -> list[np.ndarray]:
    (rows, top), (cols, left) = (divmod(n, tile) for n in image.shape[:2])
    centred = image[top // 2 :, left // 2 :]  # the margins left over split evenly
    return [
        centred[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
        for r in range(rows)
        for c in range(cols)
    ]


def read_rgb_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as float64 RGB ``H × W × 3`` in [0, 1] (the colour exercises' input)."""
    with _opened(Path(path)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def sample_photo_tiles(files: Sequence[Path] | None = None, channels: int = 1) -> np.ndarray:
    """Grey (H × W × N), or with ``channels=3`` RGB (H × W × 3 × N), 2×2 block-mean downsampled
    128×128 centred tiles of the sample photographs. Block means average away JPEG artefacts
    and noise that whitening would amplify."""
    read = read_rgb_image if channels == 3 else read_grey_image
    tiles = []
    for path in files if files is not None else sample_photo_files():
        tiles += _centred_tiles(mean_pool(read(path)[None], SAMPLE_DOWNSAMPLE)[0], SAMPLE_TILE)
    return np.stack(tiles, axis=-1)
