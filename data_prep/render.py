"""Render pen traces into an offline image in the style of the standard CROHME benchmark.

The standard images (WAP and successors) were drawn with a fixed pen on a black canvas,
at a per-expression scale that normalises the *symbol* size rather than the expression
height. Measured on the training images against their InkML (see ``render_check``), that
scale maps the mean height of the strokes taller than a tenth of the tallest stroke to
about 28 px; strokes are 3 px wide; the ink is cropped and framed by a 12 px margin on the
top and left and 11 px on the bottom and right. ``RenderSettings`` holds those numbers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderSettings:
    """How strokes become pixels; the defaults reproduce the standard CROHME offline images."""

    stroke_height: float = 28.0  # px: mean height of the strokes that count (see below)
    min_stroke_share: float = 0.1  # strokes no taller than this share of the tallest are ignored
    pen_width: int = 3  # px: line thickness
    margin_before: int = 12  # px of background above and left of the ink
    margin_after: int = 11  # px of background below and right of the ink
    max_side: int = 4000  # px: the ink is shrunk if the symbol scale would make it larger


def _clean_traces(traces: list[np.ndarray]) -> list[np.ndarray]:
    """Keep finite (n, 2) float arrays with at least one point; drop everything else."""
    cleaned = []
    for trace in traces:
        points = np.asarray(trace, dtype=np.float64).reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points):
            cleaned.append(points)
    return cleaned


def typical_stroke_size(traces: list[np.ndarray], min_share: float) -> float:
    """Mean height of the strokes taller than ``min_share`` of the tallest one (0 if all flat).

    Falls back to stroke widths when every stroke is flat (a lone minus sign, a dot).
    """
    extents = np.array([t.max(axis=0) - t.min(axis=0) for t in traces])  # (strokes, 2): w, h
    for sizes in (extents[:, 1], extents[:, 0]):
        tallest = sizes.max()
        if tallest > 0:
            return float(sizes[sizes > min_share * tallest].mean())
    return 0.0


def expression_scale(traces: list[np.ndarray], settings: RenderSettings) -> float:
    """Pixels per input unit: normalises stroke size, capped so no side exceeds ``max_side``."""
    span = float(np.ptp(np.concatenate(traces), axis=0).max())
    size = typical_stroke_size(traces, settings.min_stroke_share)
    if size <= 0:  # a single point or a pile of identical points: one pen dot
        return 1.0
    scale = settings.stroke_height / size
    limit = (settings.max_side - settings.pen_width) / span
    if scale > limit:
        logger.debug("symbol scale %.4g capped at %.4g to keep the image under %d px",
                     scale, limit, settings.max_side)
    return min(scale, limit)


def _draw(traces: list[np.ndarray], scale: float, pen_width: int) -> np.ndarray:
    """Draw 1 px centre lines of the scaled traces, then widen them with a square pen."""
    origin = np.concatenate(traces).min(axis=0)
    pad = pen_width
    pixel_traces = [np.rint((t - origin) * scale).astype(np.int32) + pad for t in traces]
    width, height = np.concatenate(pixel_traces).max(axis=0) + pad + 1
    canvas = np.zeros((int(height), int(width)), dtype=np.uint8)
    for points in pixel_traces:
        if len(points) == 1:  # polylines draws nothing for a lone point
            points = np.repeat(points, 2, axis=0)
        cv2.polylines(canvas, [points.reshape(-1, 1, 2)], isClosed=False, color=255,
                      thickness=1, lineType=cv2.LINE_8)
    pen = np.ones((pen_width, pen_width), dtype=np.uint8)
    return cv2.dilate(canvas, pen)


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
    scale = expression_scale(traces, settings)
    canvas = _draw(traces, scale, settings.pen_width)
    return _frame(canvas, settings.margin_before, settings.margin_after)
