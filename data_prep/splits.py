"""The on-disk format of a prepared split, written atomically and read fast.

A split is a folder holding:
- ``pixels.npy``: every image's uint8 pixels (white ink on black), flattened and
  concatenated; loaded memory-mapped, so opening a split costs milliseconds.
- ``samples.jsonl``: one line per expression: ``id``, ``height``, ``width``,
  ``offset`` (into pixels.npy) and ``labels``, a dict of label set -> token string
  (``v1`` always; ``v2`` where a published v2 caption exists).
- ``split.json``: name, count, label sets, skipped files with reasons, settings.
  Written last, inside a temporary folder that is renamed into place, so a folder
  named after a split is always complete.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Sample:
    """One prepared expression: its image and its labels (label set -> tokens)."""

    expression_id: str
    image: np.ndarray  # (H, W) uint8, ink 255 on 0
    labels: dict[str, list[str]]


@dataclass
class Split:
    """A prepared split loaded from disk; images are views into a memory map."""

    name: str
    samples: list[Sample]
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        return self.samples[index]


def write_split(
    out_dir: Path | str,
    name: str,
    samples: list[Sample],
    skipped: list[dict] | None = None,
    settings: dict | None = None,
) -> Path:
    """Write a split to ``out_dir/name`` atomically (temporary folder, then rename)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    temporary = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        offsets = np.cumsum([0] + [s.image.size for s in samples])
        pixels = np.empty(int(offsets[-1]), dtype=np.uint8)
        with open(temporary / "samples.jsonl", "w", encoding="utf-8") as index:
            for sample, offset in zip(samples, offsets):
                image = np.ascontiguousarray(sample.image, dtype=np.uint8)
                pixels[offset : offset + image.size] = image.ravel()
                record = {
                    "id": sample.expression_id,
                    "height": image.shape[0],
                    "width": image.shape[1],
                    "offset": int(offset),
                    "labels": {k: " ".join(v) for k, v in sample.labels.items()},
                }
                index.write(json.dumps(record) + "\n")
        np.save(temporary / "pixels.npy", pixels)
        label_sets = sorted({k for s in samples for k in s.labels})
        info = {
            "name": name,
            "count": len(samples),
            "label_sets": label_sets,
            "skipped": skipped or [],
            "settings": settings or {},
        }
        (temporary / "split.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(temporary, final)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return final


def load_split(split_dir: Path | str) -> Split:
    """Load a split written by :func:`write_split`; a clear error if it is missing or partial."""
    split_dir = Path(split_dir)
    info_file = split_dir / "split.json"
    if not info_file.is_file():
        raise FileNotFoundError(
            f"{split_dir} is not a prepared split (no split.json); build it with "
            "`python -m data_prep build --crohme DIR --offline DIR --out DIR`"
        )
    info = json.loads(info_file.read_text(encoding="utf-8"))
    pixels = np.load(split_dir / "pixels.npy", mmap_mode="r")
    samples = []
    with open(split_dir / "samples.jsonl", encoding="utf-8") as index:
        for line in index:
            record = json.loads(line)
            height, width, offset = record["height"], record["width"], record["offset"]
            image = pixels[offset : offset + height * width].reshape(height, width)
            labels = {k: v.split() for k, v in record["labels"].items()}
            samples.append(Sample(record["id"], image, labels))
    if len(samples) != info["count"]:
        raise ValueError(f"{split_dir}: split.json says {info['count']} samples, found {len(samples)}")
    return Split(info["name"], samples, info)
