"""Make the small repository sample: a few hundred CROHME files in the shared data's layout.

The sample mirrors ``crohme/`` and ``crohme_offline/`` so that every command runs on it
unchanged (``python -m data_prep build --crohme data_prep/sample/crohme ...``). Ids are
drawn with a fixed seed, training ids in proportion to each source (HAMEX, KAIST, ...),
among files that read cleanly and are small (to keep the repository light).
"""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from data_prep import layout
from data_prep.inkml import InkMLError, read_inkml


@dataclass(frozen=True)
class SampleSettings:
    """How many expressions to draw, with which seed, and the largest InkML file accepted."""

    train_count: int = 300
    test_count: int = 50
    seed: int = 0
    max_inkml_bytes: int = 20_000


def _usable(path: Path, settings: SampleSettings) -> bool:
    """A small InkML file that reads cleanly (truth and ink present)."""
    if path.stat().st_size > settings.max_inkml_bytes:
        return False
    try:
        read_inkml(path)
    except InkMLError:
        return False
    return True


def _draw(candidates: list[Path], count: int, rng: random.Random) -> list[Path]:
    return sorted(rng.sample(candidates, min(count, len(candidates))))


def _proportional_shares(sizes: dict[str, int], count: int, minimum: int = 2) -> dict[str, int]:
    """Split ``count`` among groups in proportion to their sizes, at least ``minimum`` each."""
    total = sum(sizes.values())
    shares = {name: min(size, max(minimum, count * size // total)) for name, size in sizes.items()}
    by_size = sorted(sizes, key=lambda name: -sizes[name])
    position = 0
    while sum(shares.values()) != count and position < 10 * count:
        name = by_size[position % len(by_size)]
        step = 1 if sum(shares.values()) < count else -1
        if minimum <= shares[name] + step <= sizes[name]:
            shares[name] += step
        position += 1
    return shares


def choose_train(crohme_dir: Path, captioned: set[str], settings: SampleSettings) -> list[Path]:
    """Training InkML files with a standard image, in proportion to each source folder."""
    rng = random.Random(settings.seed)
    by_source: dict[str, list[Path]] = {}
    for path in layout.inkml_files(crohme_dir, "train"):
        if path.stem in captioned and _usable(path, settings):
            by_source.setdefault(path.parent.name, []).append(path)
    shares = _proportional_shares({source: len(paths) for source, paths in by_source.items()},
                                  settings.train_count)
    chosen = []
    for source in sorted(by_source):
        chosen += _draw(by_source[source], shares[source], rng)
    return chosen


def choose_test(crohme_dir: Path, collection: str, captioned: set[str] | None,
                settings: SampleSettings) -> list[Path]:
    """``test_count`` usable InkML files of a test collection (with a caption where captioned)."""
    rng = random.Random(f"{settings.seed}-{collection}")
    candidates = [p for p in layout.inkml_files(crohme_dir, collection)
                  if (captioned is None or p.stem in captioned) and _usable(p, settings)]
    return _draw(candidates, settings.test_count, rng)


def _copy(path: Path, source_root: Path, target_root: Path) -> None:
    target = target_root / path.relative_to(source_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)


def _write_captions(offline_dir: Path, out_offline: Path, folder: str, ids: list[str]) -> None:
    """Copy the caption lines of ``ids`` (in the original order) and their images, if any."""
    wanted = set(ids)
    (out_offline / folder).mkdir(parents=True, exist_ok=True)
    for name in layout.CAPTION_FILES.values():
        source = offline_dir / folder / name
        if not source.is_file():
            continue
        lines = [line for line in source.read_text(encoding="utf-8").splitlines()
                 if line.split("\t", 1)[0] in wanted]
        (out_offline / folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    for expression_id in ids:
        image = offline_dir / folder / f"{expression_id}{layout.IMAGE_SUFFIX}"
        if image.is_file():
            _copy(image, offline_dir, out_offline)


def make_sample(crohme_dir: Path, offline_dir: Path, out_dir: Path,
                settings: SampleSettings = SampleSettings()) -> dict[str, int]:
    """Write the sample into ``out_dir/crohme`` and ``out_dir/crohme_offline``; counts per folder."""
    crohme_dir, offline_dir = layout.check_crohme_dir(crohme_dir), layout.check_offline_dir(offline_dir)
    out_crohme, out_offline = Path(out_dir) / "crohme", Path(out_dir) / "crohme_offline"
    counts = {}
    train_ids = set(layout.read_captions(offline_dir / "train" / layout.CAPTION_FILES["v1"]))
    chosen = {"train": choose_train(crohme_dir, train_ids, settings),
              "2013": choose_test(crohme_dir, "2013", None, settings)}
    for folder in ("2014", "2016", "2019"):
        captioned = set(layout.read_captions(offline_dir / folder / layout.CAPTION_FILES["v1"]))
        chosen[folder] = choose_test(crohme_dir, folder, captioned, settings)
    for collection, paths in chosen.items():
        for path in paths:
            _copy(path, crohme_dir, out_crohme)
        (out_crohme / layout.INKML_FOLDERS[collection]).mkdir(parents=True, exist_ok=True)
        if collection in layout.OFFLINE_FOLDERS:
            _write_captions(offline_dir, out_offline, collection, [p.stem for p in paths])
        counts[layout.INKML_FOLDERS[collection]] = len(paths)
    return counts
