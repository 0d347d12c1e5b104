"""The training loop: resumable at any step, on CPU or GPUs, selecting on the validation split.

A run folder holds `last.pt` (everything needed to continue exactly), `best.pt` (best
validation ExpRate, ties broken by validation loss), `metrics.jsonl` (one line per epoch), `config.yaml` and `train.log`.
Checkpoints are written atomically at the end of every epoch, every
`train.checkpoint_minutes` inside an epoch, and on SIGINT/SIGTERM, so a kill loses
at most that much work. Resuming restores weights, optimiser, schedule, RNG states
and the position inside the epoch, and refuses a different config or dataset.

A run whose folder was lost can start again from exported weights (`warm_start`): the
weights, epoch count, history and schedule come back; the optimiser's running averages
do not (exported weights do not hold them) and start from zero, as at a run's first step.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from .attention import attention_focus
from .checkpoint import (CheckpointError, atomic_save, atomic_write, capture_rng_state, file_sha256,
                         load_state_strict, read_checkpoint, restore_rng_state)
from .config import ExperimentConfig, to_dict
from .data import Example, bucket_by_area, collate, filter_trainable, load_examples
from .decoding import DecodingOptions, beam_search, greedy_search
from .encoder import STRIDE, downsample_mask
from .loss import bidirectional_loss, sequence_cross_entropy
from .metrics import edit_distance, expression_rate, word_error_rate
from .model import ABM
from .pretrained import load_pretrained
from .runtime import resolve_runtime
from .schedule import PlateauSchedule
from .vocab import default_vocabulary

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "abm-book/checkpoint/1"
# Keys that may change when resuming: they do not change what is computed.
RESUMABLE_CHANGES = {"train.max_epochs", "train.max_steps", "train.threads", "train.device",
                     "train.checkpoint_minutes", "data.data_dir", "train.valid_beam_every",
                     "train.keep_epoch_checkpoints"}


class TrainingStopped(Exception):
    """Raised inside the loop when a stop was requested (signal or max_steps)."""


def data_fingerprint(data_dir: Path, splits: list[str]) -> str:
    """SHA-256 over the split index files: changes whenever the data or its labels change."""
    digest = hashlib.sha256()
    for name in splits:
        for part in ("split.json", "samples.jsonl"):
            digest.update((data_dir / name / part).read_bytes())
    return digest.hexdigest()


def config_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts."""
    keys = sorted(set(old) | set(new))
    diffs = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}")
    return diffs


class Trainer:
    """Trains ABM on a prepared data folder into a run folder (see module docstring)."""

    def __init__(self, config: ExperimentConfig, run_dir: Path | str, resume: bool = False,
                 allow_changes: bool = False, progress: bool = True,
                 warm_start: tuple[Path, Path] | None = None):
        """`warm_start`: (weights file, its run's metrics.jsonl) to start a new run folder from; see `_warm_start`."""
        self.config = config
        self.run_dir = Path(run_dir)
        self.rank, self.world = _distributed_setup()
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        self.runtime = resolve_runtime(config.train.device, config.train.precision)
        if self.runtime.device.type == "cuda" and self.world > 1:
            self.runtime = dataclasses.replace(self.runtime, device=torch.device("cuda", self.rank % torch.cuda.device_count()))
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        _seed_everything(config.train.seed)
        self.vocab = default_vocabulary()
        self._load_data()
        self.model = self.runtime.prepare(ABM(config.model))
        self.network = self.model
        if self.world > 1:
            ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            self.network = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        optim = config.optim
        self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=optim.lr, rho=optim.rho,
                                              eps=optim.eps, weight_decay=optim.weight_decay)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.runtime.needs_grad_scaler)
        self.schedule = PlateauSchedule(optim.lr, optim.patience, optim.lr_factor, optim.max_decays,
                                        minimize=optim.schedule_metric == "valid_loss")
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.best_exprate = -1.0
        self.history: list[dict] = []
        self.epoch_totals = _empty_totals()  # running sums of the current epoch (checkpointed)
        self._stop_requested = False
        self._bad_steps = 0
        self.warm_started_from = ""  # set by _warm_start; kept in every checkpoint as provenance
        if resume and warm_start:
            raise ValueError("--resume continues a run folder, --warm-start begins one: pass only one")
        if resume:
            self._restore(allow_changes)
        elif (self.run_dir / "last.pt").exists():
            raise FileExistsError(f"{self.run_dir} already holds a run (last.pt); pass --resume to continue it "
                                  "or choose another --run-dir")
        elif warm_start:
            self._warm_start(*warm_start)

    # ----------------------------------------------------------------- data
    def _load_data(self) -> None:
        data = self.config.data
        data_dir = Path(data.data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"data folder {data_dir} does not exist; build it with "
                                    "`python -m data_prep build --crohme DIR --offline DIR --out DIR`")
        train = load_examples(data_dir / data.train_split, self.vocab, data.label_set)
        valid = load_examples(data_dir / data.valid_split, self.vocab, "v1")
        if data.train_limit:
            train = train[: data.train_limit]
        if data.valid_limit:
            valid = valid[: data.valid_limit]
        self.train_examples, self.left_out = filter_trainable(train, data.max_image_pixels, data.max_label_length)
        self.valid_examples = valid
        self.train_batches = bucket_by_area(self.train_examples, data.max_images, data.max_pixels)
        self.valid_batches = bucket_by_area(self.valid_examples, data.max_images, data.max_pixels)
        self.fingerprint = data_fingerprint(data_dir, [data.train_split, data.valid_split])
        log.info("train: %d expressions in %d batches (%d left out); valid: %d", len(self.train_examples),
                 len(self.train_batches), len(self.left_out), len(self.valid_examples))

    def _epoch_order(self, epoch: int) -> list[int]:
        """This rank's batches for an epoch: a seeded shuffle, the same on every rank, then sharded."""
        generator = torch.Generator().manual_seed(self.config.train.seed * 100_003 + epoch)
        order = torch.randperm(len(self.train_batches), generator=generator).tolist()
        usable = len(order) // self.world * self.world
        return order[:usable][self.rank :: self.world]

    # ----------------------------------------------------------------- loop
    def fit(self) -> dict:
        """Train until the schedule stops it, max_epochs, max_steps or a signal; returns the last metrics."""
        self._install_signal_handlers()
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(self.config), sort_keys=False))
        try:
            while self.epoch < self.config.train.max_epochs:
                train_metrics = self._train_one_epoch()
                metrics = {**train_metrics, **self._validate()}
                decision = self._end_epoch(metrics)
                if decision == "stop":
                    log.info("validation has not improved through %d learning-rate halvings: done", self.schedule.decays)
                    break
        except TrainingStopped as reason:
            log.info("stopped (%s) at epoch %d, step %d; checkpoint saved: resume with --resume", reason,
                     self.epoch, self.step_in_epoch)
            self._save("last.pt")
        return self.history[-1] if self.history else {}

    def _train_one_epoch(self) -> dict:
        self.network.train()
        order = self._epoch_order(self.epoch)
        totals = self.epoch_totals
        started, seconds_before = time.perf_counter(), totals["seconds"]
        last_save = time.monotonic()
        bar = tqdm(total=len(order), initial=self.step_in_epoch, desc=f"epoch {self.epoch}", unit="batch",
                   disable=not self.progress, mininterval=1 if sys.stderr.isatty() else 60, dynamic_ncols=True)
        for position in range(self.step_in_epoch, len(order)):
            batch_indices = self.train_batches[order[position]]
            terms = self._train_step([self.train_examples[i] for i in batch_indices])
            self.step_in_epoch, self.global_step = position + 1, self.global_step + 1
            if terms is not None:
                for key, value in zip(LOSS_KEYS, (terms.total, terms.l2r, terms.r2l, terms.kl)):
                    totals[key] += value.item()
                totals["steps"] += 1
            totals["images"] += len(batch_indices) * self.world
            totals["seconds"] = seconds_before + time.perf_counter() - started
            rate = totals["images"] / totals["seconds"]
            mean_loss = totals["loss"] / max(totals["steps"], 1)
            bar.update(1)
            bar.set_postfix(loss=f"{mean_loss:.3f}", img_s=f"{rate:.1f}")
            if self.global_step % 100 == 0:
                log.info("epoch %d step %d/%d loss %.4f images/s %.2f", self.epoch, position + 1, len(order),
                         mean_loss, rate)
            if self._stop_requested:
                bar.close()
                raise TrainingStopped("signal")
            if self.config.train.max_steps and self.global_step >= self.config.train.max_steps:
                bar.close()
                raise TrainingStopped("max_steps")
            if time.monotonic() - last_save > 60 * self.config.train.checkpoint_minutes:
                self._save("last.pt")
                last_save = time.monotonic()
        bar.close()
        self.epoch_totals = _empty_totals()
        return {f"train_{k}": totals[k] / max(totals["steps"], 1) for k in LOSS_KEYS} | {
            "train_images_per_s": totals["images"] / max(totals["seconds"], 1e-9), "train_seconds": totals["seconds"],
            "train_threads": torch.get_num_threads(), "train_machine": self.runtime.machine()}

    def _train_step(self, examples: list[Example]):
        """One optimiser step; returns the loss terms, or None if the loss was not finite (step skipped)."""
        batch = collate(examples, self.vocab).to(self.runtime.device, self.runtime.channels_last)
        directions = self.config.model.directions
        with self.runtime.autocast():
            outputs = self.network(batch.images, batch.image_mask, {d: batch.inputs[d] for d in directions},
                                   steps=batch.lengths + 1)  # each label's own length, not the longest
            terms = bidirectional_loss({d: outputs[d][0] for d in directions}, batch.targets,
                                       batch.target_mask, batch.lengths.to(self.runtime.device), self.config.loss)
        if not self._all_finite(terms.total):
            self._bad_steps += 1
            log.warning("non-finite loss at epoch %d step %d (batch %s...); step skipped (%d in a row)",
                        self.epoch, self.step_in_epoch, batch.ids[:3], self._bad_steps)
            if self._bad_steps >= self.config.train.max_bad_steps:
                raise FloatingPointError(f"{self._bad_steps} non-finite losses in a row; the last good "
                                         f"checkpoint is {self.run_dir / 'last.pt'}")
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self._bad_steps = 0
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Whether every rank's loss is finite (ranks must agree, or DDP would hang)."""
        finite = torch.isfinite(loss.detach()).float()
        if self.world > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        return bool(finite.item())

    # ----------------------------------------------------------- validation
    @torch.no_grad()
    def _validate(self) -> dict:
        """Validation loss (L2R cross-entropy, as the official schedule), greedy ExpRate, WER and attention focus.

        Every `valid_beam_every` epochs beam 10 is decoded as well and logged apart
        (valid_exprate_beam10), so that selection always compares greedy figures.
        """
        self.model.eval()
        started = time.perf_counter()
        losses, lengths, focus = [], [], []
        beam = self.config.train.valid_beam_every and (self.epoch + 1) % self.config.train.valid_beam_every == 0
        searches = {"greedy": (greedy_search, DecodingOptions(beam_width=1, return_attention=False))}
        if beam:
            searches["beam10"] = (beam_search, DecodingOptions(beam_width=10, return_attention=False))
        distances = {name: [] for name in searches}
        for indices in self.valid_batches:
            examples = [self.valid_examples[i] for i in indices]
            batch = collate(examples, self.vocab).to(self.runtime.device, self.runtime.channels_last)
            with self.runtime.autocast():
                outputs = self.model(batch.images, batch.image_mask, {"l2r": batch.inputs["l2r"]},
                                     steps=batch.lengths + 1)
                losses.append(float(sequence_cross_entropy(outputs["l2r"][0], batch.targets["l2r"], batch.target_mask)))
                step_focus = attention_focus(outputs["l2r"][1], downsample_mask(batch.image_mask, STRIDE))
                focus.append(step_focus[batch.target_mask.bool() & step_focus.isfinite()])
                for name, (search, options) in searches.items():
                    hypotheses = search(self.model, batch.images, batch.image_mask, options)
                    distances[name] += [edit_distance(h.token_ids, e.token_ids) for h, e in zip(hypotheses, examples)]
            lengths += [len(e.token_ids) for e in examples]
        metrics = {"valid_loss": float(np.mean(losses)), "valid_exprate": expression_rate(distances["greedy"]),
                   "valid_wer": word_error_rate(distances["greedy"], lengths),
                   "valid_attention_focus": float(torch.cat(focus).mean()), "valid_decoding": "greedy"}
        if beam:
            metrics |= {"valid_exprate_beam10": expression_rate(distances["beam10"]),
                        "valid_wer_beam10": word_error_rate(distances["beam10"], lengths)}
        return metrics | {"valid_seconds": time.perf_counter() - started}

    def _end_epoch(self, metrics: dict) -> str:
        key = self.config.optim.schedule_metric
        decision = self.schedule.update(metrics[key])
        self._apply_schedule_lr()
        metrics |= {"epoch": self.epoch, "global_step": self.global_step, "lr": self.schedule.lr,
                    "schedule": decision, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.history.append(metrics)
        improved = best_epoch(self.history, metrics["epoch"] + 1) == metrics["epoch"]
        self.best_exprate = max(self.best_exprate, metrics["valid_exprate"])
        self.epoch, self.step_in_epoch = self.epoch + 1, 0
        self._save("last.pt")
        if improved:
            self._save("best.pt")
        if self.config.train.keep_epoch_checkpoints:
            self._save(epoch_checkpoint_name(metrics["epoch"]))
        if self.is_main:
            write_metrics(self.run_dir / "metrics.jsonl", self.history)
            log.info("epoch %d: %s", metrics["epoch"], json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                                                                  for k, v in metrics.items()}))
        return decision

    def _apply_schedule_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.schedule.lr

    # ---------------------------------------------------------- checkpoints
    def _save(self, name: str) -> None:
        if not self.is_main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "schedule": dataclasses.asdict(self.schedule),
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "best_exprate": self.best_exprate, "history": self.history, "epoch_totals": self.epoch_totals,
            "rng": capture_rng_state(),
            "config": to_dict(self.config), "vocab": list(self.vocab.tokens),
            "data_fingerprint": self.fingerprint, "world_size": self.world,
            "warm_started_from": self.warm_started_from,
        }
        atomic_save(state, self.run_dir / name)

    def _restore(self, allow_changes: bool) -> None:
        path = self.run_dir / "last.pt"
        state = read_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a training checkpoint of this project (format {state.get('format')!r})")
        problems = [f"config: {key}" for key in config_differences(state["config"], to_dict(self.config))
                    if key not in RESUMABLE_CHANGES]
        if state["data_fingerprint"] != self.fingerprint:
            problems.append("data: the train/valid splits differ from the ones this run started with")
        if state.get("world_size", 1) != self.world:
            problems.append(f"world size: {state.get('world_size', 1)} processes then, {self.world} now")
        if problems and not allow_changes:
            raise CheckpointError(f"refusing to resume {path}; it differs in: " + "; ".join(problems)
                                  + ". Pass --allow-changes to resume anyway.")
        load_state_strict(self.model, state["model"], str(path))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.schedule = PlateauSchedule(**state["schedule"])
        self.epoch, self.step_in_epoch, self.global_step = state["epoch"], state["step_in_epoch"], state["global_step"]
        self.best_exprate, self.history = state["best_exprate"], state["history"]
        self.epoch_totals = state.get("epoch_totals", _empty_totals())
        restore_rng_state(state["rng"])
        self.warm_started_from = state.get("warm_started_from", "")
        log.info("resumed %s at epoch %d, step %d (global step %d)", path, self.epoch, self.step_in_epoch,
                 self.global_step)

    def _warm_start(self, weights_path: Path, history_path: Path) -> None:
        """Begin at the epoch after the one `weights_path` was exported from, with its run's history
        (metrics.jsonl) up to that epoch and the learning-rate schedule replayed over it.

        For a run whose folder is lost but whose exported weights and log survive. The
        weights must fit this config's model and data; the optimiser starts afresh.
        """
        source = load_pretrained(weights_path)
        provenance = source.provenance
        problems = [f"model.{key}" for key in config_differences(to_dict(source.config), to_dict(self.config.model))]
        if provenance.get("label_set") not in (None, self.config.data.label_set):
            problems.append(f"data.label_set ({provenance['label_set']} in the file)")
        if provenance.get("data_fingerprint") not in (None, self.fingerprint):
            problems.append("data: the weights were trained on other train/valid splits")
        if provenance.get("epoch") is None or provenance.get("global_step") is None:
            problems.append("provenance: the file does not say which epoch and step it holds")
        if problems:
            raise CheckpointError(f"cannot warm-start from {weights_path}; it differs in: " + "; ".join(problems))
        epoch = int(provenance["epoch"])
        history = _history_through(history_path, epoch, provenance.get("valid_exprate"))
        for row in history:
            self.schedule.update(row[self.config.optim.schedule_metric])
            if self.schedule.lr != row["lr"]:
                raise ValueError(f"{history_path}: epoch {row['epoch']} logged learning rate {row['lr']}, but the "
                                 f"configured schedule gives {self.schedule.lr}: the history is of another recipe")
        load_state_strict(self.model, source.state_dict(), str(weights_path))
        self._apply_schedule_lr()
        self.history, self.best_exprate = history, max(row["valid_exprate"] for row in history)
        self.epoch, self.global_step = epoch + 1, int(provenance["global_step"])
        self.warm_started_from = (f"{weights_path} (sha256 {file_sha256(weights_path)[:12]}), epoch {epoch}, "
                                  f"global step {self.global_step}; optimiser state restarted")
        log.warning("warm start from %s: epoch %d, global step %d, learning rate %g; the optimiser's running "
                    "averages start from zero", weights_path, self.epoch, self.global_step, self.schedule.lr)

    def _install_signal_handlers(self) -> None:
        def request_stop(signum, _frame):
            log.warning("received %s: saving a checkpoint after the current step", signal.Signals(signum).name)
            self._stop_requested = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                signal.signal(sig, request_stop)
            except ValueError:  # not the main thread (e.g. inside some notebook runners)
                pass


LOSS_KEYS = ("loss", "l2r", "r2l", "kl")


SELECTION_RULE = ("the highest validation ExpRate (greedy); among equal ones the lowest validation loss, "
                  "then the earliest epoch")


def epoch_checkpoint_name(epoch: int) -> str:
    """File name of the checkpoint kept at the end of `epoch` (0-based) with keep_epoch_checkpoints."""
    return f"epoch{epoch:03d}.pt"


def best_epoch(history: list[dict], budget: int) -> int:
    """The epoch best.pt holds after `budget` epochs: SELECTION_RULE.

    The loss breaks ties because early in a run every epoch may read 0% of the expressions.
    """
    candidates = [row for row in history if row["epoch"] < budget]
    if not candidates:
        raise ValueError(f"no finished epoch within a budget of {budget}")
    return max(candidates, key=lambda row: (row["valid_exprate"], -row["valid_loss"], -row["epoch"]))["epoch"]


def _history_through(path: Path, epoch: int, exprate: float | None) -> list[dict]:
    """Rows 0..epoch of a metrics.jsonl, checked to be whole and to match the weights' own record."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such metrics file (the metrics.jsonl of the run the weights came from)")
    rows = read_metrics(path)
    history = [row for row in rows if row["epoch"] <= epoch]
    if [row["epoch"] for row in history] != list(range(epoch + 1)):
        raise ValueError(f"{path}: does not hold each of epochs 0-{epoch} once, in order")
    if exprate is not None and not math.isclose(history[-1]["valid_exprate"], exprate):
        raise ValueError(f"{path}: epoch {epoch} logged validation ExpRate {history[-1]['valid_exprate']}, the "
                         f"weights {exprate}: they come from different runs")
    return history


def _empty_totals() -> dict[str, float]:
    return {**{k: 0.0 for k in LOSS_KEYS}, "steps": 0, "images": 0, "seconds": 0.0}


def read_metrics(path: Path | str) -> list[dict]:
    """The rows of a metrics.jsonl file (one dict per epoch); [] if the file does not exist.

    A last line cut short (a copy taken while the file was being replaced) is skipped with
    a warning; a damaged line anywhere else is an error.
    """
    path = Path(path)
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                log.warning("%s: last line is incomplete and was skipped", path)
                break
            raise ValueError(f"{path}, line {number}: not JSON") from None
    return rows


def write_metrics(path: Path, rows: list[dict]) -> None:
    """metrics.jsonl: one JSON object per epoch, written atomically."""
    atomic_write(path, lambda file: file.write("".join(json.dumps(row) + "\n" for row in rows)), binary=False)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _distributed_setup() -> tuple[int, int]:
    """(rank, world size); joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def images_per_second(history: list[dict]) -> float:
    """Mean training throughput over the logged epochs (for the book's planning table)."""
    rates = [row["train_images_per_s"] for row in history if math.isfinite(row.get("train_images_per_s", math.nan))]
    return float(np.mean(rates)) if rates else math.nan
