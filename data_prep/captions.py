"""Compare our normalised InkML truths with the published captions, and say why they differ.

For every expression with a published caption, ``normalize_latex(truth)`` (v1 style for
``caption.txt``, v2 style for ``caption_v2.txt``) is compared token for token with the
caption. Each difference gets one kind, tried in this order:

Conventions (the same expression, written differently):
- ``style``: our output in another :class:`LatexStyle` matches: ``\\limits``, the order of
  sub- and superscript, ``'`` versus ``\\prime``.
- ``braces``: equal once braces are ignored: the reference keeps the writer's braces
  (``\\cos { c }``) or unbraced arguments (``\\frac 1 2``), as the 2016/2019 v1 captions do.

Label corrections (the reference changed what the truth says):
- ``unusable truth``: we reject the truth (malformed LaTeX, a symbol outside the
  vocabulary such as ``\\Pi``) and the reference wrote something usable instead.
- ``number format``: only ``0`` and ``.`` differ (truth ``6.0`` or ``06``, reference ``6``).
- ``tokens removed`` / ``tokens added``: the reference is our output with tokens taken
  out / put in (``\\ldots`` the ink does not show; a stray ``_ { = }``).
- ``symbol replaced``: same length, one or two symbols differ (``\\div`` -> ``/``).
- ``symbols moved``: the same tokens in another order.

Anything else is ``unexplained``: possibly a construct the normaliser does not handle;
read those first.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from data_prep import layout
from data_prep.inkml import InkMLError, read_inkml
from data_prep.latex import V1, V2, LatexError, LatexStyle, normalize_latex

logger = logging.getLogger(__name__)

# Which InkML collection each published caption folder describes.
CAPTIONED = {"train": "train", "2014": "2014", "2016": "2016", "2019": "2019"}
STYLES = {"v1": V1, "v2": V2}
# Other styles tried before calling a difference anything but a convention.
ALTERNATIVE_STYLES = [
    LatexStyle(limits=limits, subscript_first=first, prime_as_command=prime)
    for limits in ("as_written", "never", "big_operators")
    for first in (False, True)
    for prime in (False, True)
]
CONVENTION_KINDS = ("style", "braces")
LABEL_KINDS = ("unusable truth", "number format", "tokens removed", "tokens added",
               "symbol replaced", "symbols moved")
MISS_KIND = "unexplained"


def read_truths(crohme_dir: Path, collection: str) -> dict[str, str]:
    """Expression id -> raw LaTeX truth for every readable InkML file of a collection."""
    truths = {}
    for path in layout.inkml_files(crohme_dir, collection):
        try:
            truths[path.stem] = read_inkml(path).truth
        except InkMLError as error:
            logger.info("skipping %s", error)
    return truths


def classify(truth: str, ours: list[str] | None, reference: list[str]) -> str:
    """The kind of one difference (see the module docstring); ``ours`` is None if we failed."""
    if ours is None:
        return "unusable truth"
    if _matches_in_another_style(truth, reference):
        return "style"
    if _without(ours, "{", "}") == _without(reference, "{", "}"):
        return "braces"
    if _without(ours, "0", ".") == _without(reference, "0", "."):
        return "number format"
    if _is_subsequence(reference, ours):
        return "tokens removed"
    if _is_subsequence(ours, reference):
        return "tokens added"
    if len(ours) == len(reference) and sum(a != b for a, b in zip(ours, reference)) <= 2:
        return "symbol replaced"
    if Counter(ours) == Counter(reference):
        return "symbols moved"
    return MISS_KIND


def _matches_in_another_style(truth: str, reference: list[str]) -> bool:
    for style in ALTERNATIVE_STYLES:
        try:
            if normalize_latex(truth, style) == reference:
                return True
        except LatexError:
            return False
    return False


def _without(tokens: list[str], *dropped: str) -> list[str]:
    return [t for t in tokens if t not in dropped]


def _is_subsequence(short: list[str], long: list[str]) -> bool:
    """True if ``short`` is ``long`` with some tokens removed (and is shorter)."""
    if len(short) >= len(long):
        return False
    remaining = iter(long)
    return all(token in remaining for token in short)


def compare_split(truths: dict[str, str], captions: dict[str, list[str]], style: LatexStyle) -> tuple[dict, list[dict]]:
    """Figures and differences for one caption file against the truths of its collection."""
    kinds: Counter = Counter()
    differences = []
    identical = 0
    missing = [i for i in captions if i not in truths]
    for expression_id, reference in captions.items():
        if expression_id not in truths:
            continue
        truth = truths[expression_id]
        try:
            ours, error = normalize_latex(truth, style), ""
        except LatexError as exception:
            ours, error = None, str(exception)
        if ours == reference:
            identical += 1
            continue
        kind = classify(truth, ours, reference)
        kinds[kind] += 1
        differences.append({
            "id": expression_id,
            "truth": truth,
            "ours": " ".join(ours) if ours is not None else f"(error: {error})",
            "reference": " ".join(reference),
            "kind": kind,
        })
    compared = len(captions) - len(missing)
    figures = {
        "captions": len(captions),
        "compared": compared,
        "identical": identical,
        "agreement": identical / compared if compared else 0.0,
        "kinds": dict(kinds.most_common()),
        "no_inkml": missing,
    }
    return figures, differences


def compare_captions(crohme_dir: Path, reference_dir: Path) -> dict:
    """Compare normalised truths with every published caption file; figures and differences.

    Returns ``{"splits": {split: {label_set: figures}}, "combined": {...},
    "differences": [{split, label_set, id, truth, ours, reference, kind}, ...]}``.
    """
    crohme_dir, reference_dir = Path(crohme_dir), Path(reference_dir)
    report: dict = {"splits": {}, "differences": []}
    for split, collection in CAPTIONED.items():
        caption_sets = layout.read_caption_sets(reference_dir / split)
        if not caption_sets:
            continue
        truths = read_truths(crohme_dir, collection)
        report["splits"][split] = {}
        for label_set, captions in caption_sets.items():
            figures, differences = compare_split(truths, captions, STYLES[label_set])
            report["splits"][split][label_set] = figures
            for difference in differences:
                report["differences"].append({"split": split, "label_set": label_set, **difference})
    report["combined"] = _combine(report["splits"], [("train", "v1"), ("2014", "v1")])
    return report


def _combine(splits: dict, parts: list[tuple[str, str]]) -> dict:
    """Pooled agreement over several (split, label set) pairs, e.g. train + 2014 v1."""
    present = [(s, l) for s, l in parts if l in splits.get(s, {})]
    compared = sum(splits[s][l]["compared"] for s, l in present)
    identical = sum(splits[s][l]["identical"] for s, l in present)
    name = " + ".join(f"{s} {l}" for s, l in present)
    return {"name": name, "compared": compared, "identical": identical,
            "agreement": identical / compared if compared else 0.0}


def kind_group(kind: str) -> str:
    """'convention', 'label correction' or 'possible normaliser miss' for a difference kind."""
    if kind in CONVENTION_KINDS:
        return "convention"
    if kind in LABEL_KINDS:
        return "label correction"
    return "possible normaliser miss"


def format_caption_report(report: dict, examples: int = 2) -> str:
    """A plain-text report: agreement per split and label set, then kinds with examples."""
    lines = ["Agreement of normalize_latex(InkML truth) with the published captions", ""]
    lines.append(f"{'split':<8}{'labels':<8}{'compared':>9}{'identical':>10}{'agreement':>11}")
    for split, label_sets in report["splits"].items():
        for label_set, figures in label_sets.items():
            lines.append(f"{split:<8}{label_set:<8}{figures['compared']:>9}{figures['identical']:>10}"
                         f"{100 * figures['agreement']:>10.2f}%")
            if figures["no_inkml"]:
                lines.append(f"  {len(figures['no_inkml'])} caption(s) without InkML: "
                             f"{', '.join(figures['no_inkml'][:5])}")
    combined = report["combined"]
    lines += ["", f"combined ({combined['name']}): {combined['identical']}/{combined['compared']} = "
                  f"{100 * combined['agreement']:.2f}%", ""]
    lines += _format_kinds(report["differences"], examples)
    return "\n".join(lines)


def _format_kinds(differences: list[dict], examples: int) -> list[str]:
    lines = ["Differences by kind (all splits and label sets):"]
    by_kind: dict[str, list[dict]] = {}
    for difference in differences:
        by_kind.setdefault(difference["kind"], []).append(difference)
    for kind, items in sorted(by_kind.items(), key=lambda item: -len(item[1])):
        per_set = Counter(f"{d['split']} {d['label_set']}" for d in items)
        where = ", ".join(f"{k}: {v}" for k, v in sorted(per_set.items()))
        lines.append(f"- {kind} [{kind_group(kind)}]: {len(items)} ({where})")
        for item in items[:examples]:
            lines.append(f"    {item['split']} {item['label_set']} {item['id']}: truth {item['truth']!r}")
            lines.append(f"      ours: {item['ours']}")
            lines.append(f"      ref:  {item['reference']}")
    return lines
