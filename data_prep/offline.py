"""Load the standard offline images (``crohme_offline/{train,2014,2016}``) with their captions.

Each image is ``<id>_0.png``, white (255) ink on black (0). Its labels come from the
caption files of the same folder: ``caption.txt`` as ``v1`` and ``caption_v2.txt`` as
``v2`` where that file exists. An image that cannot be read, is not bright ink on a dark
background, or whose caption has a token outside the vocabulary is skipped with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_prep import layout
from data_prep.latex import LatexError, check_tokens
from data_prep.splits import Sample


class OfflineImageError(ValueError):
    """An image that cannot be used; the message names the problem."""


@dataclass(frozen=True)
class OfflineTask:
    """One image to load and the labels that go with it (picklable, for worker processes)."""

    expression_id: str
    path: Path
    labels: dict[str, list[str]]
    check_vocabulary: bool = True  # False for test references: scoring needs no vocabulary


def load_image(path: Path | str) -> np.ndarray:
    """Read a PNG as uint8 grey pixels; raise OfflineImageError if unreadable or wrong polarity."""
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as error:
        raise OfflineImageError(f"cannot read image ({error})") from None
    check_polarity(pixels)
    return pixels


def check_polarity(pixels: np.ndarray) -> None:
    """Raise OfflineImageError unless the image is bright ink on a dark background."""
    if pixels.size == 0 or pixels.max() == pixels.min():
        raise OfflineImageError("blank image (a single grey level)")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    bright_share = float((pixels > 127).mean())
    if np.median(border) > 127 or bright_share > 0.5:
        raise OfflineImageError(
            f"not bright ink on a dark background ({100 * bright_share:.0f}% bright pixels, "
            f"border median {np.median(border):.0f}); expected white strokes on black")


def offline_tasks(offline_dir: Path, folder: str,
                  check_vocabulary: bool = True) -> tuple[list[OfflineTask], list[dict]]:
    """Pair every v1 caption of ``offline_dir/folder`` with its image; list what cannot be paired."""
    folder_path = Path(offline_dir) / folder
    caption_sets = layout.read_caption_sets(folder_path)
    captions_v1 = caption_sets.get("v1", {})
    tasks, skipped = [], []
    for expression_id in captions_v1:
        path = folder_path / f"{expression_id}{layout.IMAGE_SUFFIX}"
        labels = {name: sets[expression_id] for name, sets in caption_sets.items() if expression_id in sets}
        if not path.is_file():
            skipped.append({"file": str(path), "reason": "no image for this caption"})
        else:
            tasks.append(OfflineTask(expression_id, path, labels, check_vocabulary))
    for path in sorted(folder_path.glob(f"*{layout.IMAGE_SUFFIX}")):
        if path.name[: -len(layout.IMAGE_SUFFIX)] not in captions_v1:
            skipped.append({"file": str(path), "reason": "image without a v1 caption"})
    return tasks, skipped


def _check_labels(labels: dict[str, list[str]]) -> None:
    for label_set, tokens in labels.items():
        try:
            check_tokens(tokens)
        except LatexError as error:
            raise LatexError(f"{label_set} caption: {error}") from None


def load_offline_sample(task: OfflineTask) -> Sample:
    """Load one task's image and check its labels; OfflineImageError or LatexError if unusable."""
    if task.check_vocabulary:
        _check_labels(task.labels)
    return Sample(task.expression_id, load_image(task.path), dict(task.labels))


def load_offline_split(offline_dir: Path | str, folder: str) -> tuple[list[Sample], list[dict]]:
    """Load every captioned image of one offline folder in this process: (samples, skipped)."""
    tasks, skipped = offline_tasks(Path(offline_dir), folder)
    samples = []
    for task in tasks:
        try:
            samples.append(load_offline_sample(task))
        except (OfflineImageError, LatexError) as error:
            skipped.append({"file": str(task.path), "reason": str(error)})
    return samples, skipped
