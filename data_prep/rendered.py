"""Samples rendered from InkML: the validation set and the rendered test sets.

Each InkML file becomes one task. Its labels either come from published captions
(matched by file stem) or, where none are published (CROHME 2013, our validation set),
from ``normalize_latex`` of the file's own truth, as ``v1``. A worker reads the file,
checks the labels and renders the traces with ``data_prep.render``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from data_prep import layout
from data_prep.inkml import read_inkml
from data_prep.latex import LatexError, normalize_latex
from data_prep.render import RenderSettings, render_expression
from data_prep.splits import Sample


@dataclass(frozen=True)
class RenderTask:
    """One InkML file to render, with its published labels (None: normalise the truth)."""

    path: Path
    labels: dict[str, list[str]] | None
    settings: RenderSettings


def rendered_tasks(
    crohme_dir: Path,
    collection: str,
    caption_sets: dict[str, dict[str, list[str]]] | None,
    settings: RenderSettings,
) -> tuple[list[RenderTask], list[dict]]:
    """One task per InkML file of ``collection``; with captions, unmatched files are skipped."""
    paths = layout.inkml_files(crohme_dir, collection)
    if caption_sets is None:
        return [RenderTask(path, None, settings) for path in paths], []
    captions_v1 = caption_sets.get("v1", {})
    tasks, skipped = [], []
    for path in paths:
        if path.stem not in captions_v1:
            skipped.append({"file": str(path), "reason": "no published caption for this file"})
            continue
        labels = {name: sets[path.stem] for name, sets in caption_sets.items() if path.stem in sets}
        tasks.append(RenderTask(path, labels, settings))
    present = {path.stem for path in paths}
    folder = Path(crohme_dir) / layout.INKML_FOLDERS[collection]
    for expression_id in captions_v1:
        if expression_id not in present:
            skipped.append({"file": str(folder / f"{expression_id}.inkml"),
                            "reason": "caption without an InkML file"})
    return tasks, skipped


def render_sample(task: RenderTask) -> Sample:
    """Read, label and render one file; InkMLError, LatexError or ValueError if unusable."""
    expression = read_inkml(task.path)
    if task.labels is None:
        try:
            labels = {"v1": normalize_latex(expression.truth)}
        except LatexError as error:
            raise LatexError(f"truth '{expression.truth}': {error}") from None
    else:
        labels = dict(task.labels)  # published test captions: references, kept whole
    image = render_expression(expression.traces, task.settings)
    return Sample(expression.expression_id, image, labels)
