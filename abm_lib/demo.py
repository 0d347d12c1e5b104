"""The book's quick mode: the repository sample prepared once, and the best model at hand.

- `prepared_data()`: data_prep's splits of the repository sample, built once into a cache
  folder (the same one chapters 2-5 use), or a given folder of prepared splits.
- `best_available_model()`: weights passed in, else the shipped ones
  (abm_lib/weights/abm_paper.pt), else the *demonstration model*: the `quick` config (a
  tiny ABM) trained with the official optimiser on 16 sample training expressions until
  it knows about half of them by heart (about a minute on one CPU core, cached). It
  exercises every code path; its outputs say nothing about ABM's accuracy.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import ExperimentConfig, load_config, to_dict
from .model import ABM
from .pretrained import DEFAULT_WEIGHTS, WEIGHTS_DIR, load_pretrained

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data_prep" / "sample"

# The demonstration recipe: the `quick` config, 16 training expressions, no dropout, no
# learning-rate halving, validated on the same 16 (it measures memorisation, nothing else).
DEMO_OVERRIDES = (
    "data.train_limit=16", "data.max_images=8",
    "data.valid_split=train", "data.valid_limit=16",
    "model.encoder.dropout=0.0", "model.decoder.dropout=0.0",
    "optim.patience=1000", "train.max_epochs=60", "train.device=cpu", "train.seed=1",
)


def prepared_data(data_root: Path | str | None = None, cache_dir: Path | str | None = None) -> Path:
    """`data_root` if given, else the repository sample's splits, built into the cache if missing or stale."""
    if data_root:
        return Path(data_root)
    from data_prep.build import SPLITS, BuildSettings, build

    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "abm-book-sample"
    crohme, offline = SAMPLE_DIR / "crohme", SAMPLE_DIR / "crohme_offline"
    manifest_file = folder / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    if (manifest.get("inputs") != {"crohme": str(crohme), "offline": str(offline)}
            or set(manifest.get("splits", {})) != set(SPLITS)):
        build(BuildSettings(crohme, offline, folder, workers=1))
    return folder


def demo_config(data_dir: Path | str, threads: int = 1, extra: tuple[str, ...] = ()) -> ExperimentConfig:
    """The demonstration recipe on a prepared data folder (see DEMO_OVERRIDES)."""
    return load_config("quick", [*DEMO_OVERRIDES, f"data.data_dir={data_dir}", f"train.threads={threads}", *extra])


def demo_run_dir(config: ExperimentConfig, cache_dir: Path | str | None = None) -> Path:
    """The cache folder of a config: one folder per distinct config (threads and device aside)."""
    values = to_dict(config)
    values["train"] = {k: v for k, v in values["train"].items() if k not in ("threads", "device")}
    key = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]
    root = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "abm-book-demo"
    return root / key


def _finished(run_dir: Path, config: ExperimentConfig) -> bool:
    metrics = run_dir / "metrics.jsonl"
    if not (run_dir / "last.pt").is_file() or not metrics.is_file():
        return False
    epochs = sum(1 for line in metrics.read_text().splitlines() if line.strip())
    return epochs >= config.train.max_epochs


def demo_model(data_dir: Path | str, threads: int = 1, cache_dir: Path | str | None = None) -> tuple[ABM, Path]:
    """The demonstration model (trained now, or read from the cache) and its run folder."""
    from .training import Trainer

    config = demo_config(data_dir, threads)
    run_dir = demo_run_dir(config, cache_dir)
    if not _finished(run_dir, config):
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("training the demonstration model into %s", run_dir)
        Trainer(config, run_dir, progress=False).fit()
    return load_pretrained(run_dir / "last.pt"), run_dir


@dataclass
class AvailableModel:
    """A ready model and what the book should say about it."""

    model: ABM
    kind: str  # "weights" (given), "shipped" or "demo"
    path: Path
    description: str
    trained_on: list[str] = field(default_factory=list)  # demo: the ids it was trained on

    @property
    def is_demo(self) -> bool:
        return self.kind == "demo"


def shipped_description(provenance: dict) -> str:
    """What the shipped weights are, from their provenance: the reference run's epoch and validation score."""
    text = "the shipped weights (abm_lib/weights/abm_paper.pt)"
    if provenance.get("epoch") is None:
        return text
    text += f": the reference run after {provenance['epoch'] + 1} epoch(s)"
    if provenance.get("valid_exprate") is not None:
        text += (f", validation ExpRate {provenance['valid_exprate']:.2f}% "
                 f"({provenance.get('valid_decoding', '?')}, CROHME 2013)")
    return text


def best_available_model(weights: Path | str | None = None, data_dir: Path | str | None = None,
                         threads: int = 1, device: str = "cpu") -> AvailableModel:
    """Given weights, else the shipped ones, else the demonstration model (trained on `data_dir`)."""
    if weights:
        model = load_pretrained(weights, device=device)
        return AvailableModel(model, "weights", Path(weights), f"the checkpoint {Path(weights).name}")
    shipped = WEIGHTS_DIR / f"{DEFAULT_WEIGHTS}.pt"
    if shipped.is_file():
        model = load_pretrained(shipped, device=device)
        return AvailableModel(model, "shipped", shipped, shipped_description(model.provenance))
    if data_dir is None:
        raise FileNotFoundError("no weights given, none shipped, and no data to train the demonstration model on")
    model, run_dir = demo_model(data_dir, threads)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    trained_on = _training_ids(Path(config["data"]["data_dir"]) / config["data"]["train_split"],
                               config["data"]["train_limit"])
    description = ("a demonstration model: the tiny `quick` configuration trained for "
                   f"{config['train']['max_epochs']} epochs on {len(trained_on)} sample training expressions "
                   "(no shipped weights yet); it has memorised some of those and knows nothing else")
    return AvailableModel(model.to(device), "demo", run_dir / "last.pt", description, trained_on)


def example_sample(available: AvailableModel, data_dir: Path | str, max_tokens: int = 25):
    """An expression to show a model on (a data_prep Sample).

    The demonstration model: the longest (up to `max_tokens`) of its training expressions that
    it reads correctly by greedy search, else the shortest of them. Any other model: the test2014
    expression of median label length.
    """
    import torch

    from data_prep.splits import load_split

    from .data import pad_images
    from .decoding import DecodingOptions, greedy_search

    if not available.is_demo:
        samples = sorted(load_split(Path(data_dir) / "test2014").samples,
                         key=lambda s: (len(s.labels["v1"]), s.expression_id))
        return samples[len(samples) // 2]
    trained = set(available.trained_on)
    samples = sorted((s for s in load_split(Path(data_dir) / "train").samples if s.expression_id in trained),
                     key=lambda s: (len(s.labels["v1"]), s.expression_id))
    vocab, model = available.model.vocab, available.model.eval()
    device = next(model.parameters()).device
    options = DecodingOptions(beam_width=1, return_attention=False)
    correct = []
    for sample in samples:
        images, mask = pad_images([sample.image])
        with torch.inference_mode():
            hypothesis = greedy_search(model, images.to(device), mask.to(device), options)[0]
        if vocab.decode(hypothesis.token_ids) == sample.labels["v1"] and len(sample.labels["v1"]) <= max_tokens:
            correct.append(sample)
    return correct[-1] if correct else samples[0]


def _training_ids(split_dir: Path, limit: int) -> list[str]:
    """The ids of the first `limit` expressions of a split, as the trainer takes them."""
    ids = []
    with open(split_dir / "samples.jsonl", encoding="utf-8") as index:
        for line in index:
            if line.strip():
                ids.append(json.loads(line)["id"])
            if limit and len(ids) >= limit:
                break
    return ids
