"""Recognition metrics of the official compute-wer.py, counted over every reference expression.

Per expression the token edit distance d between prediction and reference; over a test set:
ExpRate = % with d = 0, "<=1" and "<=2" = % with d <= 1, <= 2, WER = total edits / total
reference tokens. Unlike compute-wer.py, which loops over the predicted lines, the
denominator here is the set of references: an expression with no prediction is scored as
the empty sequence (d = reference length), so it counts as an error instead of vanishing.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

Tokens = Sequence[Hashable]  # LaTeX token strings or token ids


def edit_distance(prediction: Tokens, reference: Tokens) -> int:
    """Insertions + deletions + substitutions turning one token sequence into the other."""
    if isinstance(prediction, str) or isinstance(reference, str):
        raise TypeError("pass token lists (e.g. 'x ^ { 2 }'.split()), not strings, "
                        "which would be scored character by character")
    return Levenshtein.distance(list(prediction), list(reference))


def error_tolerant_rate(distances: Sequence[int], max_errors: int) -> float:
    """% of expressions within max_errors edits of their reference (0 gives ExpRate)."""
    if not distances:
        raise ValueError("no expressions to score")
    return 100.0 * sum(d <= max_errors for d in distances) / len(distances)


def expression_rate(distances: Sequence[int]) -> float:
    """ExpRate: % of expressions recognised exactly."""
    return error_tolerant_rate(distances, 0)


def word_error_rate(distances: Sequence[int], reference_lengths: Sequence[int]) -> float:
    """Total edits / total reference tokens, in %; infinite if only empty references get edits."""
    edits, tokens = sum(distances), sum(reference_lengths)
    if tokens == 0:
        return 0.0 if edits == 0 else math.inf
    return 100.0 * edits / tokens


@dataclass
class ScoreReport:
    """The four figures of a test set, the counts behind them and every per-expression distance."""

    exp_rate: float  # % exact
    le1: float  # % with at most 1 edit
    le2: float  # % with at most 2 edits
    wer: float  # % total edits / total reference tokens
    count: int  # reference expressions, all of them scored
    missing: int  # references without a prediction, scored as empty output
    distances: dict[str, int]  # per expression id

    def summary(self) -> dict[str, float | int]:
        """The figures without the per-expression distances (for tables and logs)."""
        return {"exp_rate": self.exp_rate, "le1": self.le1, "le2": self.le2, "wer": self.wer,
                "count": self.count, "missing": self.missing}


def _as_mapping(expressions: Mapping[str, Tokens] | Sequence[Tokens]) -> Mapping[str, Tokens]:
    """A list is keyed by position ("0", "1", ...), so a list of predictions lines up with a list of references."""
    if isinstance(expressions, Mapping):
        return expressions
    return {str(index): tokens for index, tokens in enumerate(expressions)}


def score_expressions(predictions: Mapping[str, Tokens] | Sequence[Tokens],
                      references: Mapping[str, Tokens] | Sequence[Tokens]) -> ScoreReport:
    """Score predictions against references, both keyed by expression id (or aligned lists).

    Every reference counts; a missing prediction is the empty sequence. A prediction whose id
    has no reference raises ValueError: it means ids were shifted or mixed up.
    """
    predictions, references = _as_mapping(predictions), _as_mapping(references)
    unknown = [key for key in predictions if key not in references]
    if unknown:
        raise ValueError(f"{len(unknown)} predictions have no reference, e.g. {unknown[:3]}")
    if not references:
        raise ValueError("no reference expressions to score")
    distances = {key: edit_distance(predictions.get(key, ()), reference) for key, reference in references.items()}
    values = list(distances.values())
    return ScoreReport(
        exp_rate=expression_rate(values),
        le1=error_tolerant_rate(values, 1),
        le2=error_tolerant_rate(values, 2),
        wer=word_error_rate(values, [len(reference) for reference in references.values()]),
        count=len(references),
        missing=sum(key not in predictions for key in references),
        distances=distances,
    )
