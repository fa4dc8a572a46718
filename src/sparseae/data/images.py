"""Image loaders: MATLAB ``.mat`` files, image folders, and the bundled sample photographs.

All loaders return ``float64`` arrays ``H × W × N`` (one image per slice along the last axis)
and refuse non-finite values, naming the file.

Sample photographs (source ``sample-photos``, the offline default)
-------------------------------------------------------------------
Three real photographs that ship inside packages the project already installs:

- ``china.jpg`` and ``flower.jpg`` from scikit-learn (``sklearn/datasets/images``, 640×427),
- ``grace_hopper.jpg`` from matplotlib's sample data (``mpl-data/sample_data``, 512×600),
  used when the installed matplotlib has it.

Recipe (deterministic: no random numbers, fixed order):

1. decode the JPEG with Pillow to RGB ``uint8``; convert to grey in float64 with the ITU-R
   BT.601 weights ``0.299 R + 0.587 G + 0.114 B``, divided by 255;
2. downsample by 2 with 2×2 block means (this also averages away most of the JPEG 8×8 block
   artefacts and sensor noise that whitening would otherwise amplify);
3. cut the largest grid of non-overlapping 128×128 tiles, centred in the downsampled photo:
   1×2 tiles from each 320×213 photo and 2×2 tiles from grace_hopper (256×300);
4. stack the 8 tiles (china 2, flower 2, grace_hopper 4, in that order) and whiten them all
   together with :func:`sparseae.data.whitening.whiten_images`.

Result: ``128 × 128 × 8`` float64 (``128 × 128 × 4`` without grace_hopper), mean per-image
variance 0.1, bit-identical between runs with the same Pillow/numpy.

What the default experiment learns from these photos: oriented edges and bars, but longer (more
often spanning the 8×8 patch) than the localized edge detectors that Olshausen's ``IMAGES.mat``
gives. The cause is the content, not the recipe: a pagoda with long straight roof lines, a
dahlia with smooth petal contours in front of a defocused background, and a portrait, where
Olshausen's scenes are foliage and rocks; and JPEG compression, which blurs the finest scale
and, without the 2× downsampling, adds 8-pixel block edges that whitening amplifies into
gratings. Variations were measured with the ``natural`` settings (mean over filters of the
squared weight inside the best 4×4 window; 0.25 for a grating across the patch, 0.5 for a
full-length bar, 0.9 for a centred Gabor): this recipe 0.56 (three seeds within 0.003); no
downsampling 0.48; 3× or 4× downsampling 0.53 / 0.56; 64×64 or 256×256 tiles 0.55 / 0.51 (the
latter undownsampled); whitening whole photos before tiling 0.54; dropping tile borders after
whitening 0.53–0.59; hand-picked foliage or flower crops 0.49 / 0.55 (foliage gives JPEG noise
textures); spectrum flattened exactly to the ideal whitened shape 0.57; scikit-image's bundled
grass, gravel, brick, camera and astronaut images together 0.55 (its ``grass.png`` texture
alone 0.58–0.64, not worth a dependency). None is clearly better, so the recipe stays the
simplest one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sparseae.errors import DatasetError

#: File suffixes read from an image folder (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
# Pictures in formats that are not read (GIF may be animated; convert the others to PNG).
UNREAD_IMAGE_SUFFIXES = (".gif", ".bmp", ".webp", ".ppm", ".pgm", ".pbm", ".heic", ".jp2")

# BT.601 luma weights (what Pillow's "L" conversion uses, but kept in float64 here so the grey
# values are not rounded to 8 bits).
_LUMA = np.array([0.299, 0.587, 0.114])

SAMPLE_DOWNSAMPLE = 2
SAMPLE_TILE = 128
# Bump when the recipe changes, so dataset checksums (and MLflow params) change with it.
SAMPLE_RECIPE = f"grey-bt601/downsample{SAMPLE_DOWNSAMPLE}/tiles{SAMPLE_TILE}/v1"

_MAT_V73_SIGNATURE = b"MATLAB 7.3 MAT-file"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# --------------------------------------------------------------------------- .mat files


def _mat_format(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(520)
    if head.startswith(_MAT_V73_SIGNATURE) or head[512:520] == _HDF5_SIGNATURE:
        return "v7.3"
    return "v5"


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
    """Read an image stack from a MATLAB ``.mat`` file.

    Parameters
    ----------
    path : path-like
        A v5/v7 file (read with :func:`scipy.io.loadmat`). A v7.3 (HDF5) file is read with
        ``h5py`` when it is installed, otherwise refused with a message naming the format.
    variable : str
        Name of the variable holding the images (``IMAGES``, ``IMAGESr``).

    Returns
    -------
    ndarray, float64, H × W × N
    """
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    if _mat_format(path) == "v7.3":
        return _load_mat_v73(path, variable)
    try:
        contents = scipy.io.loadmat(path, variable_names=[variable])
        if variable not in contents:
            present = [name for name, _shape, _cls in scipy.io.whosmat(path)]
            raise DatasetError(
                f"{path} has no variable {variable!r}; variables present: "
                f"{', '.join(present) or 'none'}"
            )
    except DatasetError:
        raise
    except NotImplementedError as exc:  # scipy's message for HDF5-based files
        raise DatasetError(f"{path}: {exc}") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError...
        raise DatasetError(
            f"cannot read {path} as a MATLAB .mat file: {type(exc).__name__}: {exc}"
        ) from None
    return _to_image_stack(contents[variable], path, variable)


def _load_mat_v73(path: Path, variable: str) -> np.ndarray:
    if importlib.util.find_spec("h5py") is None:
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy.io.loadmat cannot read. "
            f"Re-save it as v7 (MATLAB/Octave: load it, then `save -v7 file.mat {variable}`), "
            f"or install h5py to read it directly."
        )
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if variable not in handle:
                present = [k for k in handle if not k.startswith("#")]
                raise DatasetError(
                    f"{path} has no variable {variable!r}; variables present: "
                    f"{', '.join(present) or 'none'}"
                )
            # HDF5 stores MATLAB's column-major arrays with the axes reversed.
            array = np.asarray(handle[variable]).T
    except DatasetError:
        raise
    except Exception as exc:
        raise DatasetError(f"cannot read {path} as a MATLAB v7.3 file: {exc}") from None
    return _to_image_stack(array, path, variable)


# --------------------------------------------------------------------------- image files


#: Largest image read from a folder, in pixels (512 MB as float64): larger files are refused
#: before decoding, naming the file, instead of exhausting memory (or Pillow's
#: DecompressionBombError without the file name).
MAX_IMAGE_PIXELS = 64 * 1024 * 1024

#: Pillow modes read, and the full-scale value that maps each to [0, 1]. Every image is scaled
#: by the maximum of *its own* bit depth, so a folder mixing 8-bit and 16-bit files gives
#: comparable [0, 1] grey values (one global factor would make the 8-bit ones nearly flat).
#: Floating-point images ("F") must already lie in [0, 1].
MODE_SCALE = {
    "1": 1.0,
    "L": 255.0,
    "P": 255.0,
    "RGB": 255.0,
    "CMYK": 255.0,
    "YCbCr": 255.0,
    "LAB": 255.0,
    "HSV": 255.0,
    "LA": 255.0,
    "PA": 255.0,
    "RGBA": 255.0,
    "RGBa": 255.0,
    "La": 255.0,
    "I;16": 65535.0,
    "I;16L": 65535.0,
    "I;16B": 65535.0,
    "I;16N": 65535.0,
    "I": 65535.0,
    "F": 1.0,
}


@contextlib.contextmanager
def _reading(path: Path):
    """Turn what Pillow raises for an unreadable file into one :class:`DatasetError`."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(f"image file {path} does not exist") from None
    except Image.DecompressionBombError as exc:
        raise DatasetError(f"image file {path} is too large to read safely: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"cannot read image file {path}: {exc}") from None


@contextlib.contextmanager
def _open_image(path: Path):
    """``PIL.Image.open`` with Pillow's own pixel limit lifted: :data:`MAX_IMAGE_PIXELS`
    (lower) is checked by :func:`_image_problem`, with the file's name and size."""
    from PIL import Image

    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        image = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    with image:
        yield image


def _image_problem(path: Path, image) -> str | None:
    """Checks of an opened (not yet decoded) image: mode, size, frames, transparency."""
    if image.mode not in MODE_SCALE:
        return (
            f"image file {path} has the pixel mode {image.mode!r}, which sparseae does not "
            f"read; allowed: 1-, 8- or 16-bit grey or colour (modes {', '.join(MODE_SCALE)})"
        )
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        return (
            f"image file {path} is {width}×{height} = {width * height:,} pixels, more than the "
            f"{MAX_IMAGE_PIXELS:,} sparseae reads ({MAX_IMAGE_PIXELS * 8 / 2**20:,.0f} MB as "
            f"float64); downscale or crop it"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        return (
            f"image file {path} holds {frames} frames (pages); sparseae reads single images: "
            f"save each frame as its own file"
        )
    return None


def check_image_header(path: str | os.PathLike) -> tuple[int, int]:
    """Open ``path`` without decoding its pixels; refuse what :func:`read_grey_image` would.

    Returns
    -------
    (rows, cols)
        The image size.
    """
    path = Path(path)
    with _reading(path):
        with _open_image(path) as image:
            problem = _image_problem(path, image)
            width, height = image.size
    if problem:
        raise DatasetError(problem)
    return height, width


def read_grey_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image file as a 2-D float64 grey image in [0, 1].

    Each file is scaled by the full-scale value of its own bit depth (:data:`MODE_SCALE`:
    8-bit by 255, 16-bit by 65535, 1-bit by 1); floating-point images must already lie in
    [0, 1]. Colour is converted with the BT.601 luma weights. Refused, naming the file: pixel
    modes outside :data:`MODE_SCALE`, images larger than :data:`MAX_IMAGE_PIXELS`, multi-frame
    files, transparent pixels (grey values would silently ignore the alpha channel),
    32-bit integer values outside 0..65535, non-finite values, undecodable files.
    """

    path = Path(path)
    with _reading(path):
        with _open_image(path) as image:
            problem = _image_problem(path, image)
            if problem:
                raise DatasetError(problem)
            image.load()
            mode = image.mode
            if mode in ("LA", "PA", "RGBA", "RGBa", "La") or (
                mode == "P" and "transparency" in image.info
            ):
                alpha = np.asarray(image.convert("RGBA"))[..., 3]
                if alpha.min() < 255:
                    raise DatasetError(
                        f"image file {path} has {int(np.count_nonzero(alpha < 255))} "
                        f"transparent pixels; sparseae reads grey values and would ignore the "
                        f"transparency: flatten the image onto a background first"
                    )
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F", "1"):
                grey = np.asarray(image, dtype=np.float64)
            elif mode == "L":
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
        if scale != 1.0:
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
    # Other files (notes, a README) are left alone, but nothing that looks like an image is
    # skipped in silence: a folder or a broken link under an image name, or a picture in a
    # format that is not read.
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
    """Read every image of a folder into an H × W × N grey stack (not whitened).

    All images must have the same size: a folder with mixed sizes is refused with a message
    listing the sizes found (crop or resize them first), rather than silently cropped.
    """
    files = list_image_folder(folder)
    images = [read_grey_image(p) for p in files]
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        listing = ", ".join(
            f"{p.name} {img.shape[0]}×{img.shape[1]}" for p, img in zip(files, images, strict=True)
        )
        raise DatasetError(
            f"images in {folder} have different sizes ({listing}); crop or resize them to one size"
        )
    return np.stack(images, axis=2)


# --------------------------------------------------------------------------- sample photos


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


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    blocks = image[:h, :w].reshape(h // factor, factor, w // factor, factor)
    return blocks.mean(axis=(1, 3))


def _centred_tiles(image: np.ndarray, tile: int) -> list[np.ndarray]:
    rows, cols = image.shape[0] // tile, image.shape[1] // tile
    top = (image.shape[0] - rows * tile) // 2
    left = (image.shape[1] - cols * tile) // 2
    return [
        image[top + r * tile : top + (r + 1) * tile, left + c * tile : left + (c + 1) * tile]
        for r in range(rows)
        for c in range(cols)
    ]


def sample_photo_tiles(files: Sequence[Path] | None = None) -> np.ndarray:
    """Grey, downsampled 128×128 tiles of the sample photographs (before whitening)."""
    tiles = []
    for path in files if files is not None else sample_photo_files():
        grey = _block_mean(read_grey_image(path), SAMPLE_DOWNSAMPLE)
        tiles += _centred_tiles(grey, SAMPLE_TILE)
    return np.stack(tiles, axis=2)
