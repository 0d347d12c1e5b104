"""Check our renders against the standard CROHME offline images of the same expressions.

The settings in ``render.RenderSettings`` were tuned on the training split only
(``crohme/TrainINKML`` against ``crohme_offline/train``, same ids); the 2014 and 2016 test
sets are never used for tuning, so comparing on them is a measurement, not a fit.

Measures, per split, over the expressions that have both an InkML file and an image:
- median height and width of our renders and of the standard images (target: within 5%);
- stroke width, the median over images of ``2 * ink area / ink perimeter``, which for a
  long stroke of width w is w (target: within 1 px);
- the share of expressions whose height and width are both within 10% of the standard
  image's (target: at least 90%);
- finer, untargeted: the share of renders of exactly the standard size, the share that are
  pixel-identical, and the mean ink IoU (intersection over union) where sizes agree.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data_prep.inkml import InkMLError, read_inkml
from data_prep.render import RenderSettings, render_expression

logger = logging.getLogger(__name__)

# split name -> (InkML folder under crohme/, image folder under crohme_offline/)
SPLIT_FOLDERS = {
    "2014": ("TestEM2014GT", "2014"),
    "2016": ("TEST2016_INKML_GT", "2016"),
    "train": ("TrainINKML", "train"),  # the tuning set
}
TEST_SPLITS = ("2014", "2016")
SIZE_TOLERANCE = 0.05  # median height / width
STROKE_TOLERANCE = 1.0  # px
MATCH_TOLERANCE = 0.10  # per-image height and width
MATCH_TARGET = 0.90  # share of images within MATCH_TOLERANCE


@dataclass(frozen=True)
class _Measure:
    """Size and stroke width of one image."""

    height: int
    width: int
    stroke: float


def stroke_width(image: np.ndarray) -> float:
    """Mean stroke width in px: 2 * ink area / ink contour length (w for a long stroke)."""
    ink = (image > 127).astype(np.uint8)
    contours, _ = cv2.findContours(ink, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(contour, True) for contour in contours)
    return 2.0 * float(ink.sum()) / perimeter if perimeter > 0 else 0.0


def _measure(image: np.ndarray) -> _Measure:
    return _Measure(image.shape[0], image.shape[1], stroke_width(image))


def find_pairs(crohme_dir: Path, offline_dir: Path, split: str) -> list[tuple[Path, Path]]:
    """(InkML, standard image) paths of a split's expressions that have both, sorted by id."""
    ink_folder, image_folder = SPLIT_FOLDERS[split]
    images = Path(offline_dir) / image_folder
    pairs = []
    for inkml in sorted(Path(crohme_dir, ink_folder).rglob("*.inkml"), key=lambda p: p.stem):
        image = images / f"{inkml.stem}_0.png"
        if image.exists():
            pairs.append((inkml, image))
    return pairs


def _subset(pairs: list, limit: int | None) -> list:
    """``limit`` pairs spread evenly over the list (so every source is represented)."""
    if limit is None or limit >= len(pairs):
        return pairs
    picks = np.linspace(0, len(pairs) - 1, num=max(limit, 1)).round().astype(int)
    return [pairs[i] for i in np.unique(picks)]


def _within(ours: float, standard: float, tolerance: float) -> bool:
    return abs(ours - standard) <= tolerance * standard


def ink_iou(ours: np.ndarray, standard: np.ndarray) -> float | None:
    """Intersection over union of the ink of two same-size images (None if sizes differ)."""
    if ours.shape != standard.shape:
        return None
    a, b = ours > 127, standard > 127
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _compare_split(pairs: list[tuple[Path, Path]], settings: RenderSettings) -> dict:
    """Render every pair and summarise how our images differ from the standard ones."""
    ours, standard, ids, skipped, ious = [], [], [], [], []
    render_seconds = 0.0
    for inkml, image_path in pairs:
        try:
            traces = read_inkml(inkml).traces
        except InkMLError as error:
            skipped.append({"id": inkml.stem, "reason": error.problem})
            continue
        start = time.perf_counter()
        rendered = render_expression(traces, settings)
        render_seconds += time.perf_counter() - start
        reference = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
        ours.append(_measure(rendered))
        standard.append(_measure(reference))
        ious.append(ink_iou(rendered, reference))
        ids.append(inkml.stem)
    summary = _summarise(ours, standard, ids, skipped, render_seconds)
    summary.update(_pixel_agreement(ious))
    return summary


def _pixel_agreement(ious: list[float | None]) -> dict:
    """Share of same-size and pixel-identical renders; mean ink IoU over the same-size ones."""
    same = [iou for iou in ious if iou is not None]
    return {
        "share_same_size": len(same) / len(ious) if ious else 0.0,
        "share_identical": sum(iou == 1.0 for iou in same) / len(ious) if ious else 0.0,
        "mean_ink_iou_same_size": float(np.mean(same)) if same else None,
    }


def _summarise(ours: list[_Measure], standard: list[_Measure], ids: list[str],
               skipped: list[dict], render_seconds: float) -> dict:
    """Medians, per-image match share and the worst size mismatches."""
    if not ours:
        return {"count": 0, "skipped": skipped}
    size = lambda ms: np.array([(m.height, m.width) for m in ms], dtype=float)  # noqa: E731
    ours_size, standard_size = size(ours), size(standard)
    ratio = ours_size / standard_size
    matched = (np.abs(ratio - 1) <= MATCH_TOLERANCE).all(axis=1)
    mismatch = np.abs(np.log(ratio)).max(axis=1)
    worst = [i for i in np.argsort(-mismatch)[:5] if mismatch[i] > 0]
    return {
        "count": len(ours),
        "median_height": {"ours": float(np.median(ours_size[:, 0])),
                          "standard": float(np.median(standard_size[:, 0]))},
        "median_width": {"ours": float(np.median(ours_size[:, 1])),
                         "standard": float(np.median(standard_size[:, 1]))},
        "stroke_width": {"ours": float(np.median([m.stroke for m in ours])),
                         "standard": float(np.median([m.stroke for m in standard]))},
        "share_within_10pct": float(matched.mean()),
        "render_seconds": render_seconds,
        "worst": [{"id": ids[i], "ours": ours_size[i].astype(int).tolist(),
                   "standard": standard_size[i].astype(int).tolist()} for i in worst],
        "skipped": skipped,
    }


def compare_renders(
    crohme_dir: Path,
    offline_dir: Path,
    limit: int | None = None,
    splits: tuple[str, ...] = TEST_SPLITS,
    settings: RenderSettings = RenderSettings(),
) -> dict:
    """Compare our renders with the standard images per split (2014 and 2016 by default).

    ``limit`` takes that many expressions per split, spread evenly; pass
    ``splits=("train",)`` to tune on the training split.
    """
    report = {"settings": settings.__dict__.copy(), "limit": limit, "splits": {}}
    for split in splits:
        pairs = _subset(find_pairs(Path(crohme_dir), Path(offline_dir), split), limit)
        logger.info("comparing %d renders of split %s", len(pairs), split)
        report["splits"][split] = _compare_split(pairs, settings)
    return report


def _verdict(passed: bool) -> str:
    return "ok" if passed else "MISSED"


def _split_lines(name: str, result: dict) -> list[str]:
    """The report lines of one split."""
    if not result["count"]:
        return [f"{name}: no expression with both InkML and image"]
    lines = [f"{name}: {result['count']} expressions, rendered in "
             f"{result['render_seconds']:.1f} s, {len(result['skipped'])} skipped"]
    for key, label in (("median_height", "median height"), ("median_width", "median width")):
        ours, standard = result[key]["ours"], result[key]["standard"]
        lines.append(f"  {label:<15} ours {ours:7.1f}  standard {standard:7.1f}  "
                     f"({ours / standard - 1:+.1%}, {_verdict(_within(ours, standard, SIZE_TOLERANCE))})")
    ours, standard = result["stroke_width"]["ours"], result["stroke_width"]["standard"]
    lines.append(f"  {'stroke width':<15} ours {ours:7.2f}  standard {standard:7.2f}  "
                 f"({ours - standard:+.2f} px, {_verdict(abs(ours - standard) <= STROKE_TOLERANCE)})")
    share = result["share_within_10pct"]
    lines.append(f"  height and width both within 10%: {share:.1%} "
                 f"(target {MATCH_TARGET:.0%}, {_verdict(share >= MATCH_TARGET)})")
    iou = result["mean_ink_iou_same_size"]
    lines.append(f"  exactly the standard size: {result['share_same_size']:.1%}, pixel-identical: "
                 f"{result['share_identical']:.1%}, mean ink IoU when same size: "
                 f"{'n/a' if iou is None else f'{iou:.3f}'}")
    worst = ", ".join(f"{w['id']} {w['ours']} vs {w['standard']}" for w in result["worst"][:3])
    lines.append(f"  largest size mismatches (HxW ours vs standard): {worst or 'none'}")
    return lines


def format_render_report(report: dict) -> str:
    """A short plain-text report: one block per split, each figure with its target."""
    limit = "" if report["limit"] is None else f" (at most {report['limit']} per split)"
    lines = [f"Render check against the standard CROHME offline images{limit}"]
    for name, result in report["splits"].items():
        lines.extend(_split_lines(name, result))
    return "\n".join(lines)
