"""Evaluation: decode every expression of a prepared split, score it, keep a report with provenance.

Nothing is left out: there is no size filter (an image too large for the pixel budget is
decoded in a batch of its own), an empty decoding is scored as the empty sequence, and
every label set the split carries (v1, and v2 for the test sets) is scored against every
one of its references. References stay strings: they may hold tokens the vocabulary does
not have (e.g. `\\Pi` in the 2014 v2 captions), which simply count as errors.

A report is a plain JSON-ready dict (see `evaluate`); `write_report`, `read_report` and
`results_table` store it and turn a list of them into a short fixed-width table.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import platform
import subprocess
import time
from pathlib import Path

import torch
from tqdm import tqdm

from data_prep.splits import Split, load_split

from .checkpoint import atomic_write, file_sha256, read_checkpoint
from .data import Example, bucket_by_area, pad_images
from .decoding import DecodingOptions, Hypothesis, beam_search, greedy_search
from .metrics import score_expressions
from .model import ABM
from .pretrained import WEIGHTS_DIR
from .runtime import Runtime, resolve_runtime
from .vocab import Vocabulary, default_vocabulary

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_FOLDERS = ("abm_lib", "data_prep")  # what decides the numbers; the book's edits do not
# Not code: the shipped weights, which each report names by SHA-256, so a fresh export is not an edit.
NOT_CODE = (f":(exclude){WEIGHTS_DIR.relative_to(REPO_ROOT).as_posix()}",)


def evaluate(model: ABM, split_dir: Path | str, options: DecodingOptions = DecodingOptions(),
             batch_images: int = 16, max_pixels: int = 320_000, runtime: Runtime | None = None,
             progress: bool = False, vocab: Vocabulary | None = None, limit: int | None = None) -> dict:
    """Decode and score every expression of a split (the first `limit` if given); a report dict.

    `runtime` defaults to the model's device with the project's default precision there
    (bf16 autocast on CPU, fp16 on CUDA); `vocab` to the standard dictionary.
    Width 1 uses greedy search, wider beams the official beam search.
    """
    split = load_split(split_dir)
    samples = split.samples[:limit] if limit else split.samples
    if not samples:
        raise ValueError(f"{split_dir}: no expressions to evaluate")
    runtime = runtime or resolve_runtime(str(next(model.parameters()).device))
    vocab = vocab or default_vocabulary()
    options = dataclasses.replace(options, return_attention=False)  # scores only; attention costs time
    started = time.perf_counter()
    predictions = _decode_split(model, split, samples, options, batch_images, max_pixels, runtime, vocab, progress)
    seconds = time.perf_counter() - started
    metrics, records = _score(samples, predictions)
    log.info("%s: %d expressions in %.1f s", split.name, len(samples), seconds)
    return {
        "split": split.name,
        "count": len(samples),
        "limit": limit or None,
        "metrics": metrics,
        "predictions": records,
        "decoding": dataclasses.asdict(options),
        "device": str(runtime.device),
        "precision": runtime.precision,
        "seconds": seconds,
        "images_per_second": len(samples) / max(seconds, 1e-9),
    }


def _decode_split(model: ABM, split: Split, samples: list, options: DecodingOptions, batch_images: int,
                  max_pixels: int, runtime: Runtime, vocab: Vocabulary, progress: bool) -> dict[str, list[str]]:
    """Expression id -> predicted tokens, for every sample, batched by image area."""
    examples = [Example(sample.expression_id, sample.image, []) for sample in samples]
    batches = bucket_by_area(examples, batch_images, max_pixels)
    was_training = model.training
    runtime.prepare(model).eval()
    predictions: dict[str, list[str]] = {}
    bar = tqdm(total=len(examples), desc=f"decoding {split.name}", unit="image", disable=not progress)
    try:
        for indices in batches:
            batch = [examples[i] for i in indices]
            for example, hypothesis in zip(batch, _decode_batch(model, batch, options, runtime)):
                predictions[example.expression_id] = vocab.decode(hypothesis.reading_order(options.direction))
            bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    return predictions


def _decode_batch(model: ABM, batch: list[Example], options: DecodingOptions, runtime: Runtime) -> list[Hypothesis]:
    """One padded batch through the search, on the runtime's device and in its autocast."""
    images, image_mask = pad_images([example.image for example in batch])
    memory_format = torch.channels_last if runtime.channels_last else torch.contiguous_format
    images = images.to(runtime.device).contiguous(memory_format=memory_format)
    image_mask = image_mask.to(runtime.device)
    search = greedy_search if options.beam_width == 1 else beam_search
    with runtime.autocast():
        return search(model, images, image_mask, options)


def _score(samples: list, predictions: dict[str, list[str]]) -> tuple[dict, list[dict]]:
    """Metrics per label set and one record per expression (prediction, references, distances)."""
    label_sets = sorted({name for sample in samples for name in sample.labels})
    metrics, distances = {}, {}
    for label_set in label_sets:
        references = {s.expression_id: s.labels[label_set] for s in samples if label_set in s.labels}
        scored = {key: tokens for key, tokens in predictions.items() if key in references}  # v2 may lack some
        scores = score_expressions(scored, references)
        metrics[label_set] = {"exp_rate": scores.exp_rate, "le1": scores.le1, "le2": scores.le2,
                              "wer": scores.wer, "count": scores.count}
        distances[label_set] = scores.distances
    records = [{
        "id": s.expression_id,
        "prediction": " ".join(predictions[s.expression_id]),
        "references": {name: " ".join(tokens) for name, tokens in s.labels.items()},
        "distances": {name: distances[name][s.expression_id] for name in s.labels},
    } for s in samples]
    return metrics, records


# ------------------------------------------------------------------ provenance
def provenance(checkpoint_path: Path | str, checkpoint: dict | None = None) -> dict:
    """Where a result comes from: code commit, checkpoint hash and training state, date, platform.

    Pass the already-loaded `checkpoint` dict to spare a second read of the file.
    """
    checkpoint_path = Path(checkpoint_path)
    if checkpoint is None:
        checkpoint = read_checkpoint(checkpoint_path)
    return {"checkpoint": str(checkpoint_path), "checkpoint_sha256": file_sha256(checkpoint_path),
            **_training_state(checkpoint), **code_and_machine()}


def code_and_machine() -> dict:
    """The part of every provenance record that does not depend on a checkpoint."""
    commit, dirty = git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),  # OS, kernel, machine; never the host name
    }


def git_state() -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding this package; ("unknown", None) outside one.

    Dirty means the code folders (abm_lib, data_prep) differ from the commit, untracked files included;
    the shipped weights under abm_lib/weights do not count.
    """
    try:
        top = _git("rev-parse", "--show-toplevel")
        if Path(top).resolve() != REPO_ROOT:  # e.g. installed inside some other repository
            return "unknown", None
        commit = _git("rev-parse", "HEAD")
        changes = _git("status", "--porcelain", "--", *CODE_FOLDERS, *NOT_CODE)
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(changes)


def _git(*arguments: str) -> str:
    result = subprocess.run(["git", *arguments], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=30, check=True)
    return result.stdout.strip()


def _training_state(checkpoint: dict) -> dict:
    """Config, epoch and last validation figures of our checkpoints; what is absent is left out."""
    if not isinstance(checkpoint, dict) or "format" not in checkpoint:  # e.g. an official state dict
        return {}
    state = {key: checkpoint[key] for key in ("format", "config", "epoch", "global_step", "best_exprate")
             if key in checkpoint}
    if isinstance(checkpoint.get("provenance"), dict):  # exported weights: where they were exported from
        state["exported_from"] = checkpoint["provenance"]
    history = checkpoint.get("history") or []
    if history and isinstance(history[-1], dict):
        last = history[-1]
        state["validation"] = {key: value for key, value in last.items() if key.startswith("valid_") or key == "epoch"}
    return state


# --------------------------------------------------------------- report files
def write_report(report: dict, path: Path | str) -> Path:
    """Write a report as JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    atomic_write(path, lambda file: json.dump(report, file, indent=1, ensure_ascii=False), binary=False)
    return path


def read_report(path: Path | str) -> dict:
    """A report written by `write_report`; a clear error for anything else."""
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(report, dict) or "metrics" not in report or "split" not in report:
        raise ValueError(f"{path}: not an evaluation report (no 'split' and 'metrics')")
    return report


def results_table(reports: list[dict]) -> str:
    """One fixed-width line per split and label set: count, ExpRate, <=1, <=2, WER (all in %)."""
    header = f"{'split':<18} {'labels':<6} {'count':>6} {'ExpRate':>8} {'<=1':>7} {'<=2':>7} {'WER':>7}"
    lines = [header, "-" * len(header)]
    for report in reports:
        for label_set, m in sorted(report["metrics"].items()):
            lines.append(f"{report['split']:<18} {label_set:<6} {m['count']:>6} {m['exp_rate']:>8.2f} "
                         f"{m['le1']:>7.2f} {m['le2']:>7.2f} {m['wer']:>7.2f}")
    return "\n".join(lines)
