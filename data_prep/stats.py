"""Figures about a prepared split for the book: token frequencies, label lengths, image sizes."""
from __future__ import annotations

from collections import Counter

import numpy as np

from data_prep.splits import Split


def token_frequencies(split: Split, label_set: str = "v1") -> Counter:
    """How often each token occurs in the split's labels of ``label_set``."""
    counts: Counter = Counter()
    for sample in split.samples:
        counts.update(sample.labels.get(label_set, []))
    return counts


def label_lengths(split: Split, label_set: str = "v1") -> np.ndarray:
    """Number of tokens of every label of ``label_set`` (samples without one are left out)."""
    return np.array([len(s.labels[label_set]) for s in split.samples if label_set in s.labels], dtype=np.int64)


def image_sizes(split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Heights and widths (pixels) of every image, as two int arrays."""
    heights = np.array([s.image.shape[0] for s in split.samples], dtype=np.int64)
    widths = np.array([s.image.shape[1] for s in split.samples], dtype=np.int64)
    return heights, widths


def ink_share(split: Split) -> np.ndarray:
    """Fraction of ink (bright) pixels in every image: how sparse the pictures are."""
    return np.array([float((s.image > 127).mean()) for s in split.samples])


def _describe(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"min": 0, "median": 0, "mean": 0.0, "max": 0}
    return {"min": int(values.min()), "median": float(np.median(values)),
            "mean": round(float(values.mean()), 1), "max": int(values.max())}


def split_summary(split: Split, label_set: str = "v1") -> dict:
    """One dict of headline figures: count, label sets, label length, image size, vocabulary use."""
    heights, widths = image_sizes(split)
    frequencies = token_frequencies(split, label_set)
    return {
        "name": split.name,
        "count": len(split),
        "label_sets": sorted({k for s in split.samples for k in s.labels}),
        "skipped": len(split.info.get("skipped", [])),
        "label_length": _describe(label_lengths(split, label_set)),
        "height": _describe(heights),
        "width": _describe(widths),
        "pixels_total": int((heights * widths).sum()),
        "distinct_tokens": len(frequencies),
        "most_common_tokens": frequencies.most_common(10),
    }
