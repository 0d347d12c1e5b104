"""Command line: evaluate a checkpoint on prepared test splits.

    python -m abm_lib.evaluate --checkpoint runs/abm/best.pt --data /path/to/prepared \\
        --split test2014 --split test2016 [--beam 10] [--max-length 200] [--out DIR]

Writes one JSON report per split (`<out>/<split>.json`: metrics on every label set,
every prediction, the decoding settings, provenance and this command line) and prints
a table. `--out` defaults to `eval_<checkpoint name>/` next to the checkpoint; a path
ending in .json names the file when there is a single split.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from .checkpoint import CheckpointError
from .decoding import DecodingOptions
from .evaluation import evaluate, provenance, results_table, write_report
from .model import ABM
from .pretrained import load_pretrained
from .runtime import PRECISIONS, resolve_runtime
from .vocab import Vocabulary, default_vocabulary

log = logging.getLogger("abm_lib.evaluate")
BUILD_HINT = "build it with `python -m data_prep build --crohme DIR --offline DIR --out DIR`"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="a training checkpoint (best.pt), exported weights or an official ABM checkpoint")
    parser.add_argument("--data", required=True, help="folder written by `python -m data_prep build`")
    parser.add_argument("--split", action="append", required=True, help="split to evaluate (repeatable)")
    parser.add_argument("--beam", type=int, default=10, help="beam width; 1 = greedy search (default 10)")
    parser.add_argument("--max-length", type=int, default=200, help="decoding steps at most (default 200)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="auto: bf16 on CPU, fp16 on CUDA")
    parser.add_argument("--out", help="output folder, or a .json file for a single split")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N expressions of each split")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        reports = _run(args, ["python", "-m", "abm_lib.evaluate", *argv])
    except (FileNotFoundError, ValueError, CheckpointError) as error:
        log.error("%s", _one_line(error))
        return 1
    print(results_table(reports))
    return 0


def _run(args: argparse.Namespace, command: list[str]) -> list[dict]:
    """Check the inputs, load the model once, then evaluate and write each split."""
    data_dir = _check_splits(Path(args.data), args.split)
    outputs = _output_paths(args.out, args.split, Path(args.checkpoint))
    options = DecodingOptions(beam_width=args.beam, max_length=args.max_length)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        runtime = resolve_runtime(args.device, args.precision)
    except RuntimeError as error:  # e.g. CUDA asked for on a machine without it
        raise ValueError(str(error)) from None
    model, vocab = load_model(args.checkpoint)
    origin = provenance(args.checkpoint)
    reports = []
    for split, path in zip(args.split, outputs):
        report = evaluate(model, data_dir / split, options, runtime=runtime, progress=True, vocab=vocab,
                          limit=args.limit or None)
        report |= {"provenance": origin, "command": command}
        write_report(report, path)
        log.info("wrote %s", path)
        reports.append(report)
    return reports


def _check_splits(data_dir: Path, splits: list[str]) -> Path:
    """The data folder, once every asked-for split is known to be in it."""
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data folder {data_dir} does not exist; {BUILD_HINT}")
    available = sorted(p.parent.name for p in data_dir.glob("*/split.json"))
    for split in splits:
        if split not in available:
            raise FileNotFoundError(f"no split {split!r} in {data_dir}; available: {', '.join(available) or 'none'}")
    return data_dir


def _output_paths(out: str | None, splits: list[str], checkpoint: Path) -> list[Path]:
    """One JSON path per split: `<out>/<split>.json`, or `out` itself if it names one .json file."""
    if out and out.endswith(".json"):
        if len(splits) > 1:
            raise ValueError(f"--out {out} names one file but {len(splits)} splits were asked for; give a folder")
        return [Path(out)]
    folder = Path(out) if out else checkpoint.parent / f"eval_{checkpoint.stem}"
    return [folder / f"{split}.json" for split in splits]


def load_model(path: Path | str) -> tuple[ABM, Vocabulary]:
    """Any checkpoint `load_pretrained` reads (training, exported or official) -> (ABM in eval mode, vocabulary)."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    model = load_pretrained(path)
    return model, getattr(model, "vocab", None) or default_vocabulary()


def _one_line(error: BaseException) -> str:
    """An error message on one line (KeyError's quotes removed; a listing summarised by its first lines)."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = [line.strip().rstrip(":") for line in text.splitlines() if line.strip()]
    return "; ".join(lines[:3]) + ("; ..." if len(lines) > 3 else "")


if __name__ == "__main__":
    sys.exit(main())
