"""Classifying differences between our normalised truths and the published captions."""
import pytest

from data_prep.captions import classify, compare_split, format_caption_report, kind_group
from data_prep.latex import V1


@pytest.mark.parametrize("truth, ours, reference, kind", [
    (r"$\int^{1}_{0} x$", r"\int ^ { 1 } _ { 0 } x", r"\int _ { 0 } ^ { 1 } x", "style"),
    (r"$\sum\limits_i x$", r"\sum \limits _ { i } x", r"\sum _ { i } x", "style"),
    (r"$\cos{c}$", r"\cos c", r"\cos { c }", "braces"),
    (r"$\frac 1 2$", r"\frac { 1 } { 2 }", r"\frac 1 2", "braces"),
    ("6.0", "6 . 0", "6", "number format"),
    ("08.3", "0 8 . 3", "8 . 3", "number format"),
    (r"$a+\ldots$", r"a + \ldots", "a +", "tokens removed"),
    ("$x , y$", "x , y", "x _ { , } y", "tokens added"),
    (r"$13 \div 7$", r"1 3 \div 7", "1 3 / 7", "symbol replaced"),
    ("$3,14$", "3 , 1 4", "3 1 , 4", "symbol replaced"),
    ("$a b c d e$", "a b c d e", "e d c b a", "symbols moved"),
    ("$x$", "x", "y + z", "unexplained"),
])
def test_classify(truth, ours, reference, kind):
    assert classify(truth, ours.split(), reference.split()) == kind


def test_a_truth_we_cannot_read_is_an_unusable_truth():
    assert classify(r"$2 \Pi$", None, [r"2", r"\pi"]) == "unusable truth"
    assert kind_group("unusable truth") == "label correction"
    assert kind_group("braces") == "convention"
    assert kind_group("unexplained") == "possible normaliser miss"


def test_compare_split_counts_and_lists_differences():
    truths = {"a": "$x^2$", "b": "6.0", "c": r"$2 \Pi$"}
    captions = {"a": "x ^ { 2 }".split(), "b": ["6"], "c": ["2", "\\pi"], "d": ["y"]}
    figures, differences = compare_split(truths, captions, V1)
    assert figures["compared"] == 3 and figures["identical"] == 1
    assert figures["no_inkml"] == ["d"]
    assert figures["kinds"] == {"number format": 1, "unusable truth": 1}
    assert {d["id"]: d["kind"] for d in differences} == {"b": "number format", "c": "unusable truth"}
    differences = [{"split": "train", "label_set": "v1", **d} for d in differences]
    report = {"splits": {"train": {"v1": figures}}, "differences": differences,
              "combined": {"name": "train v1", "compared": 3, "identical": 1, "agreement": 1 / 3}}
    text = format_caption_report(report)
    assert "33.33%" in text and "number format [label correction]: 1" in text
