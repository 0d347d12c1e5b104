"""Render pen traces into an offline image in the style of the standard CROHME benchmark.

How the standard images (WAP and successors) were drawn is not published; this module
follows what was measured on the training images against their InkML (tuning on the
training split only, see ``render_check``). Each expression gets its own scale, which
normalises stroke size rather than expression height: the mean height of the strokes
taller than a tenth of the tallest one becomes 28 px. Points are scaled, joined by 1 px
lines and widened by a 3x3 square pen; the ink is cropped and framed by 12 px of black on
the top and left and 11 px on the bottom and right.

With ``standard_rounding`` (the default) the arithmetic quirks of the original renderer are
kept too: non-integer coordinates taken in thousandths, the mean stroke height rounded down
to whole units, single-precision scaling and rounding down. They move points by at most a
pixel or two, but with them 98% of the training renders have exactly the standard size and
84% are pixel-identical.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSettings:
    """How strokes become pixels; the defaults reproduce the standard CROHME offline images."""

    stroke_height: float = 28.0  # px: mean height of the strokes that count (see below)
    min_stroke_share: float = 0.1  # strokes no taller than this share of the tallest are ignored
    pen_width: int = 3  # px: side of the square pen
    margin_before: int = 12  # px of background above and left of the ink
    margin_after: int = 11  # px of background below and right of the ink
    standard_rounding: bool = True  # mimic the integer arithmetic of the standard renders
    max_side: int = 4000  # px: the scale is lowered if the ink would be longer than this


def _clean_traces(traces: list[np.ndarray]) -> list[np.ndarray]:
    """Keep finite (n, 2) float arrays with at least one point; drop everything else."""
    cleaned = []
    for trace in traces:
        points = np.asarray(trace, dtype=np.float64).reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points):
            cleaned.append(points)
    return cleaned


def _integer_units(traces: list[np.ndarray]) -> list[np.ndarray]:
    """Coordinates as the standard renders saw them: integers kept, anything else in thousandths."""
    if all(np.array_equal(t, np.round(t)) for t in traces):
        return traces
    return [np.rint(t * 1000.0) for t in traces]


def _standard_rounding_is_harmless(units: list[np.ndarray], settings: RenderSettings) -> bool:
    """True if the standard arithmetic cannot distort these strokes.

    That needs strokes at least 8 units tall (CROHME's smallest are 10) and coordinates
    that single precision holds exactly, each pixel to 1/16 px.
    """
    if typical_stroke_size(units, settings.min_stroke_share) < 8:
        return False
    largest = max(float(np.abs(t).max()) for t in units)
    return largest < 2**24 and largest * expression_scale(units, settings) < 2**20


def typical_stroke_size(traces: list[np.ndarray], min_share: float) -> float:
    """Mean height of the strokes taller than ``min_share`` of the tallest one (0 if no extent).

    Falls back to stroke widths when every stroke is flat (a lone minus sign).
    """
    extents = np.array([t.max(axis=0) - t.min(axis=0) for t in traces])  # (strokes, 2): w, h
    for sizes in (extents[:, 1], extents[:, 0]):
        tallest = sizes.max()
        if tallest > 0:
            return float(sizes[sizes > min_share * tallest].mean())
    return 0.0


def expression_scale(traces: list[np.ndarray], settings: RenderSettings) -> float:
    """Pixels per input unit: normalises stroke size, capped so no side exceeds ``max_side``."""
    size = typical_stroke_size(traces, settings.min_stroke_share)
    if settings.standard_rounding:
        size = np.floor(size)  # the standard renders divided integers
    if size <= 0:  # a single point or a pile of identical points: one pen dot
        return 1.0
    scale = settings.stroke_height / size
    if settings.standard_rounding:  # ... and multiplied in single precision
        scale = float(np.float32(settings.stroke_height) / np.float32(size))
    span = float(np.ptp(np.concatenate(traces), axis=0).max())
    limit = (settings.max_side - settings.pen_width - 1) / span if span > 0 else scale
    if scale > limit:
        logger.debug("scale %.4g capped at %.4g to keep the image under %d px",
                     scale, limit, settings.max_side)
    return min(scale, limit)


def _to_pixels(traces: list[np.ndarray], scale: float, standard_rounding: bool) -> list[np.ndarray]:
    """Scaled integer pixel coordinates, shifted so the smallest is 0.

    The standard renders rounded down, in single precision, on a grid anchored at the
    coordinates' origin; otherwise points are rounded to the nearest pixel from the ink's corner.
    """
    if standard_rounding:
        scaled = [np.floor(t.astype(np.float32) * np.float32(scale)).astype(np.float64)
                  for t in traces]
    else:
        origin = np.concatenate(traces).min(axis=0)
        scaled = [np.rint((t - origin) * scale) for t in traces]
    corner = np.concatenate(scaled).min(axis=0)
    return [(t - corner).astype(np.int32) for t in scaled]


def _draw(pixel_traces: list[np.ndarray], pen_width: int) -> np.ndarray:
    """Draw 1 px lines through the points (PIL's rasteriser), then widen them with a square pen."""
    pad = pen_width
    width, height = np.concatenate(pixel_traces).max(axis=0) + 2 * pad + 1
    image = Image.new("L", (int(width), int(height)), 0)
    draw = ImageDraw.Draw(image)
    for points in pixel_traces:
        flat = (points + pad).ravel().tolist()
        if len(points) == 1:
            draw.point(flat, fill=255)
        else:
            draw.line(flat, fill=255, width=1)
    pen = np.ones((pen_width, pen_width), dtype=np.uint8)
    return cv2.dilate(np.asarray(image), pen)


def _frame(canvas: np.ndarray, before: int, after: int) -> np.ndarray:
    """Crop to the ink's bounding box and add the margins."""
    rows = np.flatnonzero(canvas.any(axis=1))
    cols = np.flatnonzero(canvas.any(axis=0))
    ink = canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return cv2.copyMakeBorder(ink, before, after, before, after, cv2.BORDER_CONSTANT, value=0)


def render_expression(
    traces: list[np.ndarray], settings: RenderSettings = RenderSettings()
) -> np.ndarray:
    """Render traces (X right, Y down, any units) as uint8 HxW: white ink 255 on black 0."""
    traces = _clean_traces(traces)
    if not traces:
        raise ValueError("no finite points to render")
    if settings.standard_rounding:
        units = _integer_units(traces)
        if _standard_rounding_is_harmless(units, settings):
            traces = units
        else:  # tiny strokes or coordinates far from the origin
            settings = replace(settings, standard_rounding=False)
    scale = expression_scale(traces, settings)
    pixels = _to_pixels(traces, scale, settings.standard_rounding)
    canvas = _draw(pixels, settings.pen_width)
    return _frame(canvas, settings.margin_before, settings.margin_after)
