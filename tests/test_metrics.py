"""Metrics on hand-made cases whose distances and rates are known."""
from __future__ import annotations

import math
import random

import pytest

from abm_lib.metrics import (edit_distance, error_tolerant_rate, expression_rate, score_expressions,
                             word_error_rate)


def naive_edit_distance(a: list, b: list) -> int:
    """Textbook dynamic programme, row by row."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


@pytest.mark.parametrize("prediction, reference, distance", [
    ("\\frac { a } { b }", "\\frac { a } { b }", 0),
    ("\\frac { a } { c }", "\\frac { a } { b }", 1),  # substitution
    ("x ^ { 2 }", "x ^ { 2 } +", 1),  # deletion
    ("x x ^ { 2 }", "x ^ { 2 }", 1),  # insertion
    ("\\sqrt { a }", "\\frac { a } { b }", 4),
    ("", "a + b", 3),
    ("a b", "", 2),
    ("", "", 0),
])
def test_edit_distance_counts_tokens_not_characters(prediction, reference, distance):
    assert edit_distance(prediction.split(), reference.split()) == distance


def test_edit_distance_agrees_with_a_textbook_implementation():
    generator = random.Random(0)
    for _ in range(200):
        a = [generator.choice("abc") for _ in range(generator.randint(0, 7))]
        b = [generator.choice("abc") for _ in range(generator.randint(0, 7))]
        assert edit_distance(a, b) == naive_edit_distance(a, b)


def test_edit_distance_refuses_strings():
    with pytest.raises(TypeError):
        edit_distance("\\frac", ["\\frac"])


def test_rates_on_known_distances():
    distances = [0, 0, 1, 2, 3]
    assert expression_rate(distances) == pytest.approx(40.0)
    assert error_tolerant_rate(distances, 1) == pytest.approx(60.0)
    assert error_tolerant_rate(distances, 2) == pytest.approx(80.0)
    assert word_error_rate(distances, [4, 3, 5, 2, 6]) == pytest.approx(100 * 6 / 20)


def test_word_error_rate_with_only_empty_references():
    assert word_error_rate([0, 0], [0, 0]) == 0.0
    assert math.isinf(word_error_rate([2], [0]))


REFERENCES = {
    "exact": "x ^ { 2 }".split(),  # 5 tokens
    "one_edit": "a + b".split(),  # 3 tokens
    "two_edits": "\\frac { 1 } { 2 }".split(),  # 7 tokens
    "missing": "\\sqrt { x }".split(),  # 4 tokens, no prediction
    "empty": [],  # 0 tokens
}
PREDICTIONS = {
    "exact": "x ^ { 2 }".split(),
    "one_edit": "a - b".split(),
    "two_edits": "\\frac { 1 } { 3 } }".split(),
    "empty": [],
}


def test_score_expressions_counts_every_reference():
    report = score_expressions(PREDICTIONS, REFERENCES)
    assert report.distances == {"exact": 0, "one_edit": 1, "two_edits": 2, "missing": 4, "empty": 0}
    assert report.count == 5 and report.missing == 1
    assert report.exp_rate == pytest.approx(100 * 2 / 5)  # "exact" and "empty"
    assert report.le1 == pytest.approx(100 * 3 / 5)
    assert report.le2 == pytest.approx(100 * 4 / 5)
    assert report.wer == pytest.approx(100 * (0 + 1 + 2 + 4 + 0) / (5 + 3 + 7 + 4 + 0))
    assert report.summary() == {"exp_rate": report.exp_rate, "le1": report.le1, "le2": report.le2,
                                "wer": report.wer, "count": 5, "missing": 1}


def test_a_missing_prediction_is_wrong_not_dropped():
    """compute-wer.py would score only the predicted line and report 100 %; here it is 50 %."""
    references = {"a": ["x"], "b": ["y", "z"]}
    report = score_expressions({"a": ["x"]}, references)
    assert report.exp_rate == pytest.approx(50.0)
    assert report.wer == pytest.approx(100 * 2 / 3)


def test_non_empty_prediction_for_an_empty_reference_is_an_error():
    report = score_expressions({"e": ["x", "y"]}, {"e": [], "f": ["a"]})
    assert report.distances == {"e": 2, "f": 1}
    assert report.exp_rate == 0.0 and report.le2 == pytest.approx(100.0)


def test_lists_are_aligned_by_position():
    report = score_expressions([["a"], ["b", "c"]], [["a"], ["b"], ["d"]])
    assert report.distances == {"0": 0, "1": 1, "2": 1}
    assert report.missing == 1


def test_token_ids_score_like_tokens():
    assert score_expressions({"a": [5, 7]}, {"a": [5, 8]}).distances == {"a": 1}


def test_a_prediction_without_reference_is_rejected():
    with pytest.raises(ValueError, match="no reference"):
        score_expressions({"a": ["x"], "stray": ["y"]}, {"a": ["x"]})


def test_no_references_is_rejected():
    with pytest.raises(ValueError):
        score_expressions({}, {})
