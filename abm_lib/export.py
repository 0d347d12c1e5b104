"""Command line: export a checkpoint as small fp16 weights for `abm_lib.load_pretrained`.

    python -m abm_lib.export runs/abm/best.pt abm_lib/weights/abm_paper.pt
    python -m abm_lib.export official_abm.pkl abm_lib/weights/abm_official.pt
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .checkpoint import CheckpointError
from .pretrained import export_weights


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a training checkpoint (run/best.pt) or an official state dict")
    parser.add_argument("out", help="the weights file to write, e.g. abm_lib/weights/abm_paper.pt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        provenance = export_weights(args.checkpoint, args.out)
    except CheckpointError as error:
        logging.error("%s", error)
        return 1
    logging.info("wrote %s (%.1f MB): %s", args.out, Path(args.out).stat().st_size / 1e6, provenance)
    return 0


if __name__ == "__main__":
    sys.exit(main())
