"""Figures about a split for the book."""
import numpy as np

from data_prep.splits import Sample, Split
from data_prep.stats import image_sizes, label_lengths, split_summary, token_frequencies


def _split():
    return Split("demo", [
        Sample("a", np.zeros((10, 40), np.uint8), {"v1": ["x", "^", "{", "2", "}"]}),
        Sample("b", np.full((20, 30), 255, np.uint8), {"v1": ["x"], "v2": ["y"]}),
    ])


def test_token_frequencies_and_lengths():
    split = _split()
    assert token_frequencies(split)["x"] == 2
    assert token_frequencies(split, "v2") == {"y": 1}
    np.testing.assert_array_equal(label_lengths(split), [5, 1])
    np.testing.assert_array_equal(label_lengths(split, "v2"), [1])


def test_image_sizes_and_summary():
    heights, widths = image_sizes(_split())
    np.testing.assert_array_equal(heights, [10, 20])
    np.testing.assert_array_equal(widths, [40, 30])
    summary = split_summary(_split())
    assert summary["count"] == 2 and summary["label_sets"] == ["v1", "v2"]
    assert summary["height"] == {"min": 10, "median": 15.0, "mean": 15.0, "max": 20}
    assert summary["pixels_total"] == 1000
    assert summary["most_common_tokens"][0] == ("x", 2)
