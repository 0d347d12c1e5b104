"""Command line: the ablation study, every variant trained and compared at one budget of epochs.

    python -m abm_lib.ablate train --data prepared/ --runs runs/ablations --epochs 3
    python -m abm_lib.ablate evaluate --data prepared/ --runs runs/ablations \\
        --reference runs/abm_paper --epochs 3 --out results/ablations

`train` trains the variants of `results.ABLATIONS` one after another (the `paper` config with
each variant's overrides), resuming any run already started, so the same command continues
the study after a stop; Ctrl-C or SIGTERM stops the run under way with a checkpoint. The full
model is not trained again: its row is the reference run (`--reference`) at the same budget.
Raising `--epochs` later extends every variant alike.

`evaluate` takes, for each variant whose run has reached the budget, the checkpoint best.pt
held at that budget (highest validation ExpRate, then lowest loss; kept as epochNNN.pt), evaluates it on
CROHME 2014 (`--split`) with beam 10, and writes into `--out/<variant>/` the report (eval/<split>.json),
the metrics of the budget's epochs, the run's config and `selection.json` (which epoch, why). Test splits are for this final
evaluation only: nothing is selected on them.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from .checkpoint import atomic_write
from .results import ABLATIONS, Ablation
from .training import SELECTION_RULE, best_epoch, epoch_checkpoint_name, write_metrics
from .viz import read_metrics

log = logging.getLogger("abm_lib.ablate")
FULL_MODEL = "abm"  # the variant whose run is the reference run


def train_command(ablation: Ablation, args: argparse.Namespace) -> list[str]:
    """The `abm_lib.train` command of one variant at the budget, resuming if its run exists."""
    run_dir = args.runs / ablation.name
    command = [sys.executable, "-m", "abm_lib.train", "--config", args.config, "--data", str(args.data),
               "--run-dir", str(run_dir)]
    if (run_dir / "last.pt").exists():
        command.append("--resume")
    settings = [*ablation.overrides, *args.set, f"train.max_epochs={args.epochs}", "train.keep_epoch_checkpoints=true"]
    if args.threads:
        settings.append(f"train.threads={args.threads}")
    for setting in settings:
        command += ["--set", setting]
    return command


def run_in_turn(commands: list[list[str]]) -> int:
    """Run commands one after another; a SIGTERM/SIGINT is passed on to the running one, then stops all."""
    stopping, child = False, None

    def stop(signum, _frame):
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for command in commands:
            if stopping:
                return 1
            log.info("running: %s", " ".join(command))
            child = subprocess.Popen(command)
            code = child.wait()
            if stopping or code != 0:
                return code or 1
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def selected_checkpoint(run_dir: Path, epochs: int) -> tuple[int, Path] | None:
    """(epoch, checkpoint) that best.pt held after `epochs` epochs; None if the run is not that far."""
    metrics = read_metrics(run_dir / "metrics.jsonl")
    if len(metrics) < epochs:
        log.warning("%s: %d of %d epochs trained; not evaluated", run_dir, len(metrics), epochs)
        return None
    epoch = best_epoch(metrics, epochs)
    checkpoint = run_dir / epoch_checkpoint_name(epoch)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint} is missing: train with train.keep_epoch_checkpoints=true "
                                "to keep each epoch's checkpoint")
    return epoch, checkpoint


def write_results(ablation: Ablation, run_dir: Path, epoch: int, checkpoint: Path, epochs: int, out: Path,
                  base_config: str) -> None:
    """metrics.jsonl (the budget's epochs), config.yaml and selection.json of one variant in out/."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for row in read_metrics(run_dir / "metrics.jsonl") if row["epoch"] < epochs]
    write_metrics(out / "metrics.jsonl", rows)
    shutil.copyfile(run_dir / "config.yaml", out / "config.yaml")
    selection = {"variant": ablation.name, "description": ablation.description, "base_config": base_config,
                 "overrides": list(ablation.overrides),
                 "budget_epochs": epochs, "selected_epoch": epoch, "rule": SELECTION_RULE,
                 "run": str(run_dir), "checkpoint": checkpoint.name}
    atomic_write(out / "selection.json", lambda file: json.dump(selection, file, indent=1), binary=False)


def evaluate_command(checkpoint: Path, out: Path, args: argparse.Namespace) -> list[str]:
    """The `abm_lib.evaluate` command: beam 10 on the test split, report into out/eval/."""
    command = [sys.executable, "-m", "abm_lib.evaluate", "--checkpoint", str(checkpoint), "--data", str(args.data),
               "--split", args.split, "--beam", "10", "--out", str(out / "eval")]
    return command + (["--threads", str(args.threads)] if args.threads else [])


def run_dir_of(ablation: Ablation, runs: Path, reference: Path) -> Path:
    return reference if ablation.name == FULL_MODEL else runs / ablation.name


def chosen(names: list[str] | None) -> list[Ablation]:
    known = {a.name: a for a in ABLATIONS}
    unknown = sorted(set(names or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {sorted(known)}")
    return [a for a in ABLATIONS if not names or a.name in names]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.ablate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("train", "evaluate"))
    parser.add_argument("--data", required=True, type=Path, help="folder written by `python -m data_prep build`")
    parser.add_argument("--runs", required=True, type=Path, help="folder of the variants' run folders (outside git)")
    parser.add_argument("--epochs", required=True, type=int, help="the budget: epochs of training per variant")
    parser.add_argument("--reference", type=Path, help="the reference run (the full model's row); for evaluate")
    parser.add_argument("--out", type=Path, help="where evaluate writes (results/ablations); for evaluate")
    parser.add_argument("--variant", action="append", help="only these variants (repeatable)")
    parser.add_argument("--config", default="paper", help="the base config of every variant")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every variant, e.g. train.device=cuda (train)")
    parser.add_argument("--split", default="test2014", help="the test split (evaluate; default test2014)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: torch's default)")
    args = parser.parse_args(argv)
    if args.action == "evaluate" and not (args.reference and args.out):
        parser.error("evaluate needs --reference and --out")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        variants = chosen(args.variant)
    except ValueError as error:
        log.error("%s", error)
        return 2
    if args.action == "train":
        commands = [train_command(a, args) for a in variants if a.name != FULL_MODEL]
        return run_in_turn(commands)
    for ablation in variants:
        run_dir = run_dir_of(ablation, args.runs, args.reference)
        try:
            selected = selected_checkpoint(run_dir, args.epochs)
        except (FileNotFoundError, ValueError) as error:
            log.error("%s: %s", ablation.name, error)
            return 1
        if selected is None:
            continue
        epoch, checkpoint = selected
        out = args.out / ablation.name
        code = run_in_turn([evaluate_command(checkpoint, out, args)])
        if code:
            return code
        write_results(ablation, run_dir, epoch, checkpoint, args.epochs, out, args.config)
        log.info("%s: epoch %d of %d evaluated into %s", ablation.name, epoch, args.epochs, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
