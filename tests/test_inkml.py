"""The InkML reader on small odd files: extra channels, missing truth, empty or broken input."""
from pathlib import Path

import numpy as np
import pytest

from data_prep.inkml import InkMLError, parse_trace, read_inkml

FIXTURES = Path(__file__).parent / "fixtures" / "inkml"


def test_extra_channels_are_dropped_and_points_kept_in_order():
    expression = read_inkml(FIXTURES / "three_channels.inkml")
    assert expression.expression_id == "three_channels"
    assert expression.truth == "$x^2$"
    assert [t.shape for t in expression.traces] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(expression.traces[0], [[10, 20], [11, 22], [12, 24]])
    np.testing.assert_array_equal(expression.traces[1], [[30, 5], [31, 6]])


def test_source_defaults_to_the_parent_folder():
    assert read_inkml(FIXTURES / "three_channels.inkml").source == "inkml"
    assert read_inkml(FIXTURES / "three_channels.inkml", source="HAMEX").source == "HAMEX"


@pytest.mark.parametrize("name", ["no_truth.inkml", "rit_4295_2.inkml"])
def test_a_file_without_truth_is_refused(name):
    with pytest.raises(InkMLError, match="no LaTeX truth") as caught:
        read_inkml(FIXTURES / name)
    assert caught.value.path.endswith(name)


def test_an_empty_trace_is_skipped_but_the_rest_kept():
    expression = read_inkml(FIXTURES / "empty_trace.inkml")
    assert len(expression.traces) == 1 and expression.traces[0].shape == (3, 2)


def test_a_file_whose_traces_are_all_empty_is_refused():
    with pytest.raises(InkMLError, match="no ink"):
        read_inkml(FIXTURES / "all_traces_empty.inkml")


def test_an_empty_file_is_refused():
    with pytest.raises(InkMLError, match="empty file"):
        read_inkml(FIXTURES / "MfrDB3088.inkml")


def test_broken_xml_is_refused_with_the_parser_message():
    with pytest.raises(InkMLError, match="broken XML"):
        read_inkml(FIXTURES / "broken_xml.inkml")


def test_non_numeric_trace_names_the_trace():
    with pytest.raises(InkMLError, match="trace 0 is not numeric"):
        read_inkml(FIXTURES / "not_numeric.inkml")


@pytest.mark.parametrize("name, truth", [
    ("non_utf8.inkml", r"$a \cdot b$"),
    ("MfrDB0104.inkml", r"$c \cdot {( \sqrt[3]{2} )^{2}} + b \cdot ( \sqrt[3]{2} ) + a = 0$"),
])
def test_a_stray_non_utf8_byte_does_not_lose_the_file(name, truth):
    assert read_inkml(FIXTURES / name).truth == truth


def test_a_missing_file_is_an_inkml_error():
    with pytest.raises(InkMLError, match="cannot read"):
        read_inkml(FIXTURES / "does_not_exist.inkml")


def test_parse_trace_accepts_newlines_and_ignores_empty_points():
    points = parse_trace("1 2 0,\n3 4 5, ,5 6")
    np.testing.assert_array_equal(points, [[1, 2], [3, 4], [5, 6]])
    assert parse_trace("").shape == (0, 2)
