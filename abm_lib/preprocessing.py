"""Turn any picture of a handwritten expression into an image like the training ones.

The standard CROHME offline images are binary (0/255), white ink on black, cropped to
the ink with 12 px of background before it and 11 px after it on each axis, drawn with
a 3 px pen (stroke width 2 * area / contour length: 3.2 to 3.5 px) at a per-expression
scale that fixes the symbol size. `preprocess_image` reproduces that:

1. grayscale: RGB by luminance; an alpha channel that varies is taken as the ink itself
   (drawings exported from a canvas), a constant one is ignored;
2. polarity and ink: Otsu's threshold splits the pixels in two; the larger class is the
   paper, so dark ink on light paper is inverted and both polarities give the same result;
3. specks of fewer than `min_component_area` pixels are dropped, and the rest cropped;
4. symbol size: the measure is the mean height, less the pen's thickness (stroke width - 1),
   of the ink's connected components taller than a tenth of the tallest one: the image-side
   analogue of the renderer's rule, which fixes the mean height of such strokes before the
   3 px pen widens them (so a minus sign or a thick marker does not skew it). Over the
   8,835 standard training images it has median 30 px and 2.5th-97.5th percentiles
   25.7-39.5 px. Inside `symbol_height_range` the image keeps its size (the model has seen
   such sizes), outside it is rescaled so that the measure becomes `symbol_height_target`;
   so 95% of the standard images pass through unchanged;
5. stroke width: outside `stroke_width_range` the ink is thinned (3x3 erosions) or
   thickened (3x3 dilations) towards the 3.3 px of the training images;
6. crop again and add the margins.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from data_prep.render_check import stroke_width as rendered_stroke_width


class ImageError(ValueError):
    """An image that cannot be recognised; the message names it and says why."""


@dataclass(frozen=True)
class PreprocessSettings:
    """What the training images look like; saved with exported weights."""

    ink: str = "white on black"  # the only polarity the model reads
    margin_before: int = 12  # px of background above and left of the ink
    margin_after: int = 11  # px below and right of it
    symbol_height_range: tuple[float, float] = (25.5, 39.5)  # px, left unscaled (2.5th-97.5th percentile)
    symbol_height_target: float = 30.0  # px, the training median, for images outside the range
    min_height_share: float = 0.1  # components no taller than this share of the tallest are not measured
    stroke_width_range: tuple[float, float] = (2.5, 4.5)  # px, left as is
    stroke_width_target: float = 3.3  # px
    min_component_area: int = 4  # px; smaller ink components are noise (a 3 px pen dot has 9)

    def __post_init__(self) -> None:
        if self.ink != "white on black":
            raise ValueError(f"unsupported ink polarity {self.ink!r}; the model reads 'white on black'")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "PreprocessSettings":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise KeyError(f"unknown preprocessing setting(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def read_image(path: Path | str) -> np.ndarray:
    """An image file as an array (EXIF orientation applied); readable errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode not in ("1", "L", "LA", "I", "I;16", "F", "RGB", "RGBA"):
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ImageError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None


def _to_unit_range(array: np.ndarray) -> np.ndarray:
    """Any numeric array -> float64 scaled to [0, 255] by its own minimum and maximum."""
    values = np.nan_to_num(array.astype(np.float64))
    low, high = values.min(), values.max()
    return (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)


def to_gray(image: np.ndarray, source: str = "image") -> np.ndarray:
    """HxW, HxWx{1,2,3,4} of any dtype -> uint8 HxW; a varying alpha channel is the ink."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (2, 4):
        alpha = image[..., -1]
        if alpha.min() != alpha.max():
            return np.rint(_to_unit_range(alpha)).astype(np.uint8)
        image = image[..., :-1]
    if image.ndim == 3 and image.shape[2] == 3:
        image = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim != 2 or image.size == 0:
        raise ImageError(f"{source}: expected an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    return np.rint(_to_unit_range(image)).astype(np.uint8)


def ink_mask(gray: np.ndarray, source: str = "image") -> np.ndarray:
    """Boolean ink mask by Otsu's threshold; the minority class is the ink, whatever its colour."""
    if gray.min() == gray.max():
        raise ImageError(f"{source}: no ink found (the image is blank after thresholding)")
    _, bright = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    bright = bright > 0
    return ~bright if bright.mean() > 0.5 else bright


def remove_specks(ink: np.ndarray, min_area: int) -> np.ndarray:
    """Drop the 8-connected ink components smaller than min_area pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False  # label 0 is the background
    return keep[labels]


def crop_to_ink(ink: np.ndarray, source: str = "image") -> np.ndarray:
    """The smallest box holding all the ink."""
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if len(rows) == 0:
        raise ImageError(f"{source}: no ink found (the image is blank after thresholding)")
    return ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def symbol_height(ink: np.ndarray, min_share: float = 0.1) -> float:
    """Mean height without the pen (height - stroke width + 1) of the components taller than
    min_share of the tallest one (px)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    heights = stats[1:, cv2.CC_STAT_HEIGHT] - (stroke_width(ink) - 1.0)
    heights = np.maximum(heights, 1.0)
    return float(heights[heights > min_share * heights.max()].mean())


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width of a binary ink mask, measured exactly as the renderer check measures the
    standard images (data_prep.render_check.stroke_width), so both speak of the same 3.3 px."""
    return rendered_stroke_width(ink.astype(np.uint8) * 255)


def rescale_ink(ink: np.ndarray, scale: float) -> np.ndarray:
    """Resize a binary mask by `scale` (area averaging when shrinking) and re-threshold at half."""
    height, width = ink.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(ink.astype(np.uint8) * 255, size, interpolation=interpolation)
    return resized >= 128


def normalize_stroke_width(ink: np.ndarray, settings: PreprocessSettings) -> np.ndarray:
    """Erode or dilate (3x3, each step changes the width by ~2 px) into the training range."""
    width = stroke_width(ink)
    low, high = settings.stroke_width_range
    if low <= width <= high:
        return ink
    steps = max(1, round(abs(width - settings.stroke_width_target) / 2))
    kernel = np.ones((3, 3), np.uint8)
    operation = cv2.erode if width > high else cv2.dilate
    changed = operation(ink.astype(np.uint8), kernel, iterations=steps) > 0
    return changed if changed.any() else ink


def standardize_ink(ink: np.ndarray, settings: PreprocessSettings, source: str = "image") -> np.ndarray:
    """A cropped ink mask -> the training images' symbol size and stroke width, cropped again."""
    height = symbol_height(ink, settings.min_height_share)
    low, high = settings.symbol_height_range
    if not low <= height <= high:
        ink = rescale_ink(ink, settings.symbol_height_target / height)
    return crop_to_ink(normalize_stroke_width(crop_to_ink(ink, source), settings), source)


def preprocess_image(image_or_path: np.ndarray | Path | str,
                     settings: PreprocessSettings = PreprocessSettings()) -> np.ndarray:
    """A path or array of any size, dtype or polarity -> uint8 HxW, white ink on black, as in training."""
    if isinstance(image_or_path, (str, Path)):
        source, image = str(image_or_path), read_image(image_or_path)
    else:
        source, image = "image array", image_or_path
    ink = ink_mask(to_gray(image, source), source)
    ink = crop_to_ink(remove_specks(ink, settings.min_component_area), source)
    ink = standardize_ink(ink, settings, source)
    before, after = settings.margin_before, settings.margin_after
    framed = np.pad(ink, ((before, after), (before, after)))
    return framed.astype(np.uint8) * 255
