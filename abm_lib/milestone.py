"""Command line: a training checkpoint packed small enough to carry to another machine, and unpacked to resume from.

    python -m abm_lib.milestone pack runs/abm_paper/last.pt runs/abm_paper_milestone.pt
    python -m abm_lib.milestone unpack runs/abm_paper_milestone.pt runs/abm_paper
    python -m abm_lib.train --config paper --data prepared/ --run-dir runs/abm_paper --resume

A long CPU run outlives the machine it started on; a run folder kept outside git may be
gone in the next work session. A milestone keeps everything `last.pt` holds (position in
the epoch, schedule, history, RNG states, config) but stores the weights in fp16 and the
optimiser's running averages in bf16: about half the size. The averages must travel with
the weights: Adadelta's step size grows out of its accumulated updates over thousands of
steps, so restarting them would shrink every step back to about sqrt(eps).
`unpack` rebuilds `last.pt` (fp32), `metrics.jsonl` and `config.yaml` in a run folder; the
resumed run then differs from an unbroken one only by that rounding.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import sys
from pathlib import Path

import torch
import yaml

from .checkpoint import CheckpointError, atomic_save, file_sha256, read_checkpoint
from .training import CHECKPOINT_FORMAT, best_epoch, write_metrics

MILESTONE_FORMAT = "abm-book/milestone/1"
WEIGHT_DTYPE = torch.float16  # weights are small numbers: fp16 keeps 11 bits of mantissa
STATE_DTYPE = torch.bfloat16  # running averages of squares span many decades: bf16 keeps fp32's range

log = logging.getLogger(__name__)


def _cast_floats(tensors: dict, dtype: torch.dtype) -> dict:
    """The same dict with every floating tensor cast to dtype, except an optimiser's step counter."""
    return {key: value.to(dtype) if isinstance(value, torch.Tensor) and value.is_floating_point()
            and key != "step" else value for key, value in tensors.items()}


def pack(checkpoint: dict, source: str = "") -> dict:
    """A training checkpoint (`Trainer` format) as a milestone: fp16 weights, bf16 optimiser state."""
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{source or 'checkpoint'}: not a training checkpoint of this project "
                              f"(format {checkpoint.get('format')!r})")
    optimizer = checkpoint["optimizer"]
    packed_optimizer = {**optimizer, "state": {index: _cast_floats(state, STATE_DTYPE)
                                               for index, state in optimizer["state"].items()}}
    return {**checkpoint, "format": MILESTONE_FORMAT, "model": _cast_floats(checkpoint["model"], WEIGHT_DTYPE),
            "optimizer": packed_optimizer,
            "packed_from": {"file": source, "date": datetime.datetime.now().isoformat(timespec="seconds")}}


def unpack(milestone: dict, source: str = "") -> dict:
    """A milestone back as a training checkpoint with fp32 tensors, ready for `--resume`."""
    if milestone.get("format") != MILESTONE_FORMAT:
        raise CheckpointError(f"{source or 'milestone'}: not a milestone (format {milestone.get('format')!r}); "
                              "make one with `python -m abm_lib.milestone pack RUN/last.pt OUT`")
    optimizer = milestone["optimizer"]
    state = {index: _cast_floats(values, torch.float32) for index, values in optimizer["state"].items()}
    checkpoint = {key: value for key, value in milestone.items() if key != "packed_from"}
    return {**checkpoint, "format": CHECKPOINT_FORMAT, "model": _cast_floats(milestone["model"], torch.float32),
            "optimizer": {**optimizer, "state": state}, "unpacked_from": source}


def pack_file(checkpoint_path: Path, out: Path) -> dict:
    """Pack a checkpoint file into `out` (written atomically); returns what it holds."""
    checkpoint = read_checkpoint(checkpoint_path)
    milestone = pack(checkpoint, f"{checkpoint_path} (sha256 {file_sha256(checkpoint_path)})")
    atomic_save(milestone, out)
    return milestone


def unpack_to_run(milestone_path: Path, run_dir: Path) -> dict:
    """Rebuild a run folder from a milestone: last.pt, metrics.jsonl, config.yaml, and best.pt when
    the milestone sits at the end of the epoch best.pt would hold. Refuses to replace a run."""
    if (run_dir / "last.pt").exists():
        raise FileExistsError(f"{run_dir / 'last.pt'} exists; resume that run, or unpack into an empty folder")
    checkpoint = unpack(read_checkpoint(milestone_path), f"{milestone_path} (sha256 {file_sha256(milestone_path)})")
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_save(checkpoint, run_dir / "last.pt")
    history = checkpoint["history"]
    if history:
        write_metrics(run_dir / "metrics.jsonl", history)
        at_epoch_end = checkpoint["step_in_epoch"] == 0 and checkpoint["epoch"] == history[-1]["epoch"] + 1
        if at_epoch_end and best_epoch(history, len(history)) == history[-1]["epoch"]:
            atomic_save(checkpoint, run_dir / "best.pt")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(checkpoint["config"], sort_keys=False))
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.milestone", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    pack_parser = commands.add_parser("pack", help="a training checkpoint -> a milestone file")
    pack_parser.add_argument("checkpoint", type=Path, help="e.g. runs/abm_paper/last.pt")
    pack_parser.add_argument("out", type=Path, help="e.g. runs/abm_paper_milestone.pt")
    unpack_parser = commands.add_parser("unpack", help="a milestone file -> a run folder to --resume")
    unpack_parser.add_argument("milestone", type=Path)
    unpack_parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "pack":
            state = pack_file(args.checkpoint, args.out)
            size = args.out.stat().st_size / 1e6
            log.info("wrote %s (%.1f MB): epoch %d, step %d, global step %d", args.out, size, state["epoch"],
                     state["step_in_epoch"], state["global_step"])
        else:
            state = unpack_to_run(args.milestone, args.run_dir)
            log.info("unpacked into %s: epoch %d, step %d, global step %d; best.pt %s; continue with "
                     "`python -m abm_lib.train ... --run-dir %s --resume`", args.run_dir, state["epoch"],
                     state["step_in_epoch"], state["global_step"],
                     "written" if (args.run_dir / "best.pt").exists() else "comes back at the next improvement",
                     args.run_dir)
    except (CheckpointError, FileExistsError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
