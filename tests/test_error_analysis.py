"""Error analysis of evaluation records: edit operations per token, errors by length, near misses."""
from __future__ import annotations

import pytest

from abm_lib.error_analysis import errors_by_length, token_errors, wrong_examples


def record(identifier: str, prediction: str, reference: str, distance: int, v2: str | None = None) -> dict:
    references = {"v1": reference} | ({"v2": v2} if v2 is not None else {})
    return {"id": identifier, "prediction": prediction, "references": references,
            "distances": {name: distance for name in references}}


RECORDS = [
    record("a", "x ^ { 2 }", "x ^ { 2 }", 0),
    record("b", "y ^ { 2 }", "x ^ { 2 }", 1),            # x read as y
    record("c", "x ^ { 2", "x ^ { 2 }", 1),              # } missed
    record("d", "x + ^ { 2 }", "x ^ { 2 }", 1),          # + spurious
    record("e", "a + b", "\\frac { a } { b }", 5, v2="\\frac { a } { b }"),
]


def test_each_kind_of_edit_is_counted_against_the_right_token():
    errors = token_errors(RECORDS[:4])
    assert errors.substituted == {"x": 1}
    assert errors.confusions == {("x", "y"): 1}
    assert errors.missed == {"}": 1}
    assert errors.spurious == {"+": 1}
    assert errors.occurrences["x"] == 4 and errors.occurrences["}"] == 4


def test_the_number_of_counted_errors_equals_the_edit_distance():
    errors = token_errors(RECORDS)
    counted = sum(errors.substituted.values()) + sum(errors.missed.values()) + sum(errors.spurious.values())
    assert counted == sum(r["distances"]["v1"] for r in RECORDS)


def test_rows_rank_tokens_by_errors_with_their_share_and_confusion():
    rows = token_errors(RECORDS[:4]).rows()
    by_token = {row["token"]: row for row in rows}
    assert by_token["x"]["most_often_read_as"] == "y"
    assert by_token["x"]["share"] == pytest.approx(1 / 4)
    assert by_token["}"]["missed"] == 1 and by_token["}"]["most_often_read_as"] is None
    assert rows == sorted(rows, key=lambda row: -row["errors"])


def test_records_without_the_label_set_are_left_out():
    errors = token_errors(RECORDS, label_set="v2")
    assert sum(errors.occurrences.values()) == len("\\frac { a } { b }".split())


def test_errors_by_length_bins_cover_every_record_once():
    bins = errors_by_length(RECORDS, edges=(0, 5, 7))
    assert [b["tokens"] for b in bins] == ["5-6", "7+"]  # the empty 0-4 bin is left out
    assert sum(b["count"] for b in bins) == len(RECORDS)
    assert bins[0]["exp_rate"] == pytest.approx(25.0)  # a, b, c, d: 5 tokens each, one exact
    assert bins[1]["mean_distance"] == 5


def test_wrong_examples_are_the_nearest_misses_among_the_available_ids():
    assert [r["id"] for r in wrong_examples(RECORDS, count=2)] == ["b", "c"]
    assert [r["id"] for r in wrong_examples(RECORDS, available={"e", "a"})] == ["e"]
