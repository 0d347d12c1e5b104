"""Command line: train ABM.

    python -m abm_lib.train --config paper --data /path/to/prepared --run-dir runs/abm [--resume]
    python -m abm_lib.train ... --run-dir runs/abm2 --warm-start abm_lib/weights/abm_paper.pt \
        --history results/abm_paper/metrics.jsonl     # a run folder lost: go on from exported weights
    torchrun --nproc_per_node 4 -m abm_lib.train --config paper --data ... --run-dir ...

Any config field can be overridden: `--set optim.lr=0.5 --set model.directions=[l2r]`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .config import load_config
from .training import Trainer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="paper", help="shipped config name (paper, quick) or a YAML file")
    parser.add_argument("--data", required=True, help="folder written by `python -m data_prep build`")
    parser.add_argument("--run-dir", required=True, help="where checkpoints and logs go (keep it outside git)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--warm-start", type=Path, metavar="WEIGHTS",
                        help="begin a new run after the epoch these exported weights hold (optimiser restarted)")
    parser.add_argument("--history", type=Path, metavar="METRICS_JSONL",
                        help="with --warm-start: the metrics.jsonl of the run the weights came from")
    parser.add_argument("--allow-changes", action="store_true",
                        help="resume even if the config or data differ from the checkpoint's")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. optim.lr=0.5 (repeatable)")
    parser.add_argument("--device", help="shortcut for --set train.device=...")
    args = parser.parse_args(argv)
    if bool(args.warm_start) != bool(args.history):
        parser.error("--warm-start and --history go together: the weights and the metrics.jsonl of their run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = [f"data.data_dir={args.data}", *args.set]
    if args.device:
        overrides.append(f"train.device={args.device}")
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        handlers=[logging.StreamHandler(), logging.FileHandler(run_dir / "train.log")])
    try:
        config = load_config(args.config, overrides)
        warm_start = (args.warm_start, args.history) if args.warm_start else None
        trainer = Trainer(config, run_dir, resume=args.resume, allow_changes=args.allow_changes,
                          warm_start=warm_start)
        final = trainer.fit()
    except (FileNotFoundError, FileExistsError, KeyError, ValueError, CheckpointError, FloatingPointError) as error:
        logging.error("%s", error)
        return 1
    logging.info("finished: %s", final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
