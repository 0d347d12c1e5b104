"""Build every prepared split from the CROHME data: the standard images and rendered InkML.

=====================  ==============================================  ==============
split                  images                                          labels
=====================  ==============================================  ==============
train                  crohme_offline/train (8,835 standard images)    v1
valid                  crohme/TestINKMLGT (CROHME 2013), rendered       v1 = normalised truth
test2014, test2016     crohme_offline/2014, /2016 (standard images)    v1, v2
test2014_rendered,     crohme/TestEM2014GT, TEST2016_INKML_GT,         v1, v2 (published)
test2016_rendered,     TEST2019_INKML_GT, rendered
test2019
=====================  ==============================================  ==============

Training labels must lie in the vocabulary; test captions are references for scoring
and are kept whole (2014 v2 writes `\\Pi`, which no model here can emit, so that
expression simply counts as an error on v2). A file that cannot be used (corrupt, no
truth, a training label outside the vocabulary) is skipped
and listed with its reason; one bad file never stops the build. Files are processed by a
pool of worker processes; each split is written atomically by ``splits.write_split`` and
``OUT/manifest.json`` (counts, skipped files, settings) is replaced atomically at the end.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from data_prep import layout
from data_prep.inkml import InkMLError
from data_prep.offline import load_offline_sample, offline_tasks
from data_prep.render import RenderSettings
from data_prep.rendered import render_sample, rendered_tasks
from data_prep.splits import Sample, write_split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSpec:
    """Where one prepared split comes from."""

    name: str
    rendered: bool  # True: render crohme/<collection>; False: load crohme_offline/<folder> images
    source: str  # the offline folder or the InkML collection (see layout)
    captions: str | None  # offline folder whose caption files label a rendered split
    description: str


SPLITS = {
    spec.name: spec
    for spec in (
        SplitSpec("train", False, "train", None, "standard training images; v1 captions"),
        SplitSpec("valid", True, "2013", None,
                  "CROHME 2013 test InkML, rendered; v1 = normalize_latex(truth)"),
        SplitSpec("test2014", False, "2014", None, "standard 2014 test images; v1 and v2 captions"),
        SplitSpec("test2016", False, "2016", None, "standard 2016 test images; v1 and v2 captions"),
        SplitSpec("test2014_rendered", True, "2014", "2014",
                  "CROHME 2014 test InkML, rendered; published v1 and v2 captions"),
        SplitSpec("test2016_rendered", True, "2016", "2016",
                  "CROHME 2016 test InkML, rendered; published v1 and v2 captions"),
        SplitSpec("test2019", True, "2019", "2019",
                  "CROHME 2019 test InkML, rendered; published v1 and v2 captions"),
    )
}


@dataclass
class BuildSettings:
    """What to build, from where, into where, and how."""

    crohme_dir: Path
    offline_dir: Path
    out_dir: Path
    splits: tuple[str, ...] = tuple(SPLITS)
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    render: RenderSettings = RenderSettings()


def check_inputs(settings: BuildSettings) -> None:
    """Fail at once, with a one-line LayoutError, on unknown splits or missing input folders."""
    unknown = [name for name in settings.splits if name not in SPLITS]
    if unknown:
        raise layout.LayoutError(f"unknown split(s) {', '.join(unknown)}; choose from {', '.join(SPLITS)}")
    specs = [SPLITS[name] for name in settings.splits]
    if any(spec.rendered for spec in specs):
        layout.check_crohme_dir(settings.crohme_dir)
    if any(not spec.rendered or spec.captions for spec in specs):
        layout.check_offline_dir(settings.offline_dir)
    if settings.out_dir.exists() and not settings.out_dir.is_dir():
        raise layout.LayoutError(f"--out {settings.out_dir}: exists and is not a folder")


def _attempt(worker: Callable, task) -> tuple[Sample | None, str]:
    """Run ``worker(task)``; a failure becomes a reason string instead of an exception."""
    try:
        return worker(task), ""
    except InkMLError as error:
        return None, error.problem
    except ValueError as error:  # LatexError, OfflineImageError, render errors
        return None, str(error)
    except Exception as error:  # noqa: BLE001 - an unforeseen file must not stop the build
        logger.exception("unexpected failure on %s", task.path)
        return None, f"{type(error).__name__}: {error}"


def _run(tasks: list, worker: Callable, pool, name: str, progress: bool) -> tuple[list[Sample], list[dict]]:
    """Apply ``worker`` to every task (in the pool if given), keeping order; collect skips."""
    attempt = functools.partial(_attempt, worker)
    results: Iterable = pool.imap(attempt, tasks, chunksize=16) if pool else map(attempt, tasks)
    samples, skipped = [], []
    for task, (sample, reason) in tqdm(zip(tasks, results), total=len(tasks), desc=name,
                                       unit="file", disable=not progress, leave=False):
        if sample is None:
            skipped.append({"file": str(task.path), "reason": reason})
        else:
            samples.append(sample)
    return samples, skipped


def _tasks(spec: SplitSpec, settings: BuildSettings) -> tuple[list, Callable, list[dict], dict]:
    """The tasks, worker, early skips and recorded settings of one split."""
    if not spec.rendered:
        tasks, skipped = offline_tasks(settings.offline_dir, spec.source, check_vocabulary=spec.name == "train")
        source = str(settings.offline_dir / spec.source)
        return tasks, load_offline_sample, skipped, {"source": source, "description": spec.description}
    caption_sets = None
    if spec.captions:
        caption_sets = layout.read_caption_sets(settings.offline_dir / spec.captions)
    tasks, skipped = rendered_tasks(settings.crohme_dir, spec.source, caption_sets, settings.render)
    recorded = {
        "source": str(settings.crohme_dir / layout.INKML_FOLDERS[spec.source]),
        "description": spec.description,
        "render": dataclasses.asdict(settings.render),
    }
    if spec.captions:
        recorded["captions"] = str(settings.offline_dir / spec.captions)
    return tasks, render_sample, skipped, recorded


def build_split(spec: SplitSpec, settings: BuildSettings, pool=None, progress: bool = False) -> dict:
    """Build and write one split; return its manifest entry (count, skipped, settings)."""
    start = time.perf_counter()
    tasks, worker, skipped, recorded = _tasks(spec, settings)
    samples, failed = _run(tasks, worker, pool, spec.name, progress)
    skipped = skipped + failed
    for entry in skipped:
        logger.info("%s: skipped %s: %s", spec.name, entry["file"], entry["reason"])
    write_split(settings.out_dir, spec.name, samples, skipped, recorded)
    return {"count": len(samples), "skipped": skipped, "settings": recorded,
            "seconds": round(time.perf_counter() - start, 1)}


def build(settings: BuildSettings, progress: bool = False) -> dict:
    """Build the selected splits into ``settings.out_dir``; return (and write) the manifest."""
    check_inputs(settings)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    pool = multiprocessing.Pool(settings.workers) if settings.workers > 1 else None
    try:
        for name in settings.splits:
            entries[name] = build_split(SPLITS[name], settings, pool, progress)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return update_manifest(settings, entries)


def update_manifest(settings: BuildSettings, entries: dict) -> dict:
    """Merge the new split entries into ``OUT/manifest.json`` and replace it atomically."""
    path = settings.out_dir / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"splits": {}}
    manifest["inputs"] = {"crohme": str(settings.crohme_dir), "offline": str(settings.offline_dir)}
    manifest["workers"] = settings.workers
    manifest["splits"].update(entries)
    handle, temporary = tempfile.mkstemp(prefix=".manifest.", suffix=".json", dir=settings.out_dir)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(manifest, file, indent=1)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the manifest is for everyone
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return manifest


def summary_table(manifest: dict, names: Iterable[str] | None = None) -> str:
    """A plain-text table: split, count, skipped (and build seconds)."""
    names = list(names) if names is not None else list(manifest["splits"])
    lines = [f"{'split':<20}{'count':>7}{'skipped':>9}{'seconds':>9}"]
    for name in names:
        entry = manifest["splits"][name]
        lines.append(f"{name:<20}{entry['count']:>7}{len(entry['skipped']):>9}{entry.get('seconds', 0):>9.1f}")
    return "\n".join(lines)
