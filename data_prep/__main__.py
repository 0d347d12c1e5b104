"""Command line: ``python -m data_prep {build,check-captions,check-render,sample} ...``.

A thin front-end: every command calls one library function and prints its result.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from data_prep import layout
from data_prep.build import SPLITS, BuildSettings, build, summary_table


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped file")
    commands = parser.add_subparsers(dest="command", required=True)

    build_parser = commands.add_parser("build", help="build the prepared splits into --out")
    build_parser.add_argument("--crohme", type=Path, required=True, help="the crohme/ InkML folder")
    build_parser.add_argument("--offline", type=Path, required=True, help="the crohme_offline/ folder")
    build_parser.add_argument("--out", type=Path, required=True, help="where to write the splits")
    build_parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    build_parser.add_argument("--splits", nargs="+", default=list(SPLITS), metavar="SPLIT",
                              help=f"splits to build (default: all of {', '.join(SPLITS)})")

    captions_parser = commands.add_parser("check-captions", help="compare normalised truths with published captions")
    captions_parser.add_argument("--crohme", type=Path, required=True)
    captions_parser.add_argument("--reference", type=Path, required=True, help="the crohme_offline/ folder")
    captions_parser.add_argument("--examples", type=int, default=2, help="examples shown per kind")

    render_parser = commands.add_parser("check-render", help="compare our renders with the standard images")
    render_parser.add_argument("--crohme", type=Path, required=True)
    render_parser.add_argument("--offline", type=Path, required=True)
    render_parser.add_argument("--limit", type=int, default=None, help="compare at most N expressions")

    sample_parser = commands.add_parser("sample", help="make the small repository sample")
    sample_parser.add_argument("--crohme", type=Path, required=True)
    sample_parser.add_argument("--offline", type=Path, required=True)
    sample_parser.add_argument("--out", type=Path, required=True)
    sample_parser.add_argument("--seed", type=int, default=0)
    return parser


def _build(args: argparse.Namespace) -> None:
    settings = BuildSettings(args.crohme, args.offline, args.out, tuple(args.splits))
    if args.workers is not None:
        settings.workers = max(1, args.workers)
    start = time.perf_counter()
    manifest = build(settings, progress=True)
    print(summary_table(manifest, settings.splits))
    print(f"built {len(settings.splits)} split(s) into {settings.out_dir} in "
          f"{time.perf_counter() - start:.0f} s with {settings.workers} worker(s); "
          f"skipped files and reasons: {settings.out_dir / 'manifest.json'}")


def _check_captions(args: argparse.Namespace) -> None:
    from data_prep.captions import compare_captions, format_caption_report

    layout.check_crohme_dir(args.crohme)
    layout.check_offline_dir(args.reference, option="--reference")
    print(format_caption_report(compare_captions(args.crohme, args.reference), args.examples))


def _check_render(args: argparse.Namespace) -> None:
    from data_prep.render_check import compare_renders, format_render_report

    layout.check_crohme_dir(args.crohme)
    layout.check_offline_dir(args.offline)
    print(format_render_report(compare_renders(args.crohme, args.offline, args.limit)))


def _sample(args: argparse.Namespace) -> None:
    from data_prep.sample import SampleSettings, make_sample

    counts = make_sample(args.crohme, args.offline, args.out, SampleSettings(seed=args.seed))
    for folder, count in counts.items():
        print(f"{folder:<20}{count:>5}")


COMMANDS = {"build": _build, "check-captions": _check_captions,
            "check-render": _check_render, "sample": _sample}


def main(argv: list[str] | None = None) -> int:
    """Run one command; input-layout problems end with a one-line message and status 2."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        COMMANDS[args.command](args)
    except layout.LayoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
