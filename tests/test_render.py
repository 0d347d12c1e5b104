"""The renderer: polarity, framing, symbol-size normalisation, unit invariance, odd input."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_prep.inkml import read_inkml
from data_prep.render import RenderSettings, render_expression
from data_prep.render_check import compare_renders, stroke_width

DATA = Path(__file__).parents[2] / "shared" / "data"
SETTINGS = RenderSettings()
FRAME = SETTINGS.margin_before + SETTINGS.margin_after


def _letter(x: float = 0.0, height: float = 30.0) -> list[np.ndarray]:
    """A hand-made 'N' of the given height whose left edge is at x: three strokes."""
    h = height
    return [np.array([[x, h], [x, 0.0]]),
            np.array([[x, 0.0], [x + 0.6 * h, h]]),
            np.array([[x + 0.6 * h, h], [x + 0.6 * h, 0.0]])]


def _row(count: int, height: float = 30.0) -> list[np.ndarray]:
    """``count`` letters side by side."""
    return [s for i in range(count) for s in _letter(i * height, height)]


def _ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """Background rows/columns before and after the ink: top, bottom, left, right."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return rows[0], image.shape[0] - 1 - rows[-1], cols[0], image.shape[1] - 1 - cols[-1]


def test_output_is_binary_uint8_with_bright_ink_on_black():
    image = render_expression(_row(3))
    assert image.dtype == np.uint8 and image.ndim == 2
    assert set(np.unique(image)) == {0, 255}
    assert (image == 0).mean() > 0.5  # mostly background
    assert image[0, :].max() == 0 and image[:, 0].max() == 0  # corners are background


def test_ink_is_framed_by_the_standard_margins():
    top, bottom, left, right = _ink_box(render_expression(_row(2)))
    assert (top, left) == (SETTINGS.margin_before,) * 2
    assert (bottom, right) == (SETTINGS.margin_after,) * 2


def test_symbol_size_not_expression_size_sets_the_scale():
    one, four = render_expression(_row(1)), render_expression(_row(4))
    # Same letter height, so the same image height: the letters become stroke_height tall.
    assert one.shape[0] == four.shape[0]
    assert abs(one.shape[0] - FRAME - (SETTINGS.stroke_height + SETTINGS.pen_width)) <= 1
    # Four letters span 3 * 30 + 18 = 108 units where one spans 18.
    scale = SETTINGS.stroke_height / 30.0
    for image, units in ((one, 18.0), (four, 108.0)):
        assert abs(image.shape[1] - FRAME - (units * scale + SETTINGS.pen_width)) <= 1


def test_a_taller_layout_of_the_same_symbols_gives_a_taller_image():
    row = render_expression(_row(2))
    stacked = render_expression(_letter(0) + [s + [0, 60.0] for s in _letter(0)])
    assert stacked.shape[0] > 2 * (row.shape[0] - FRAME)
    assert stacked.shape[1] < row.shape[1]


@pytest.mark.parametrize("standard_rounding", [True, False])
def test_units_and_position_do_not_change_the_render(standard_rounding):
    settings = RenderSettings(standard_rounding=standard_rounding)
    reference = render_expression(_row(3), settings).shape
    # HAMEX-like (about one unit, decimals), KAIST-like (thousands, integers), far off.
    for scale, shift in [(1 / 90, 3.7), (347.0, 10_000.0), (1.0, 1e9)]:
        traces = [s * scale + shift for s in _row(3)]
        if scale > 1:
            traces = [np.rint(t) for t in traces]
        shape = render_expression(traces, settings).shape
        assert abs(shape[0] - reference[0]) <= 2 and abs(shape[1] - reference[1]) <= 2


def test_aspect_ratio_follows_the_ink():
    traces = [np.array([[0.0, 0.0], [0.0, 40.0]]), np.array([[0.0, 20.0], [200.0, 20.0]])]
    image = render_expression(traces)
    ink_h, ink_w = image.shape[0] - FRAME - 3, image.shape[1] - FRAME - 3
    assert abs(ink_w / ink_h - 5.0) < 0.2


def test_stroke_width_is_the_pen_width():
    assert abs(stroke_width(render_expression(_row(4))) - SETTINGS.pen_width) < 0.5


@pytest.mark.parametrize("traces", [
    [np.array([[5.0, 5.0]])],                                  # one point
    [np.array([[5.0, 5.0]] * 7)],                              # identical points
    [np.array([[5.0, 5.0]]), np.array([[5.0, 5.0]])],         # identical strokes
    [np.array([[0.0, 0.0], [100.0, 0.0]])],                    # one flat stroke
    [np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 9.0], [3.0, 9.0]])],  # duplicated points
    [np.array([[0.0, 0.0], [1e12, 3e11]])],                    # a huge range
    [np.array([[0.0, 0.0], [1e-9, 3e-9]])],                    # a tiny range
    [np.empty((0, 2)), np.array([[1.0, 1.0], [np.nan, 2.0], [2.0, 3.0]])],  # empty, NaN
])
def test_degenerate_input_still_gives_a_framed_image(traces):
    image = render_expression(traces)
    assert image.dtype == np.uint8 and image.max() == 255
    assert min(image.shape) >= FRAME + 1
    assert max(image.shape) <= SETTINGS.max_side + FRAME
    assert _ink_box(image)[:3:2] == (SETTINGS.margin_before, SETTINGS.margin_before)


def test_a_lone_point_is_one_pen_dot():
    image = render_expression([np.array([[3.0, 4.0]])])
    assert image.shape == (FRAME + SETTINGS.pen_width,) * 2
    assert (image > 0).sum() == SETTINGS.pen_width**2


def test_no_ink_at_all_is_an_error():
    with pytest.raises(ValueError):
        render_expression([np.empty((0, 2)), np.array([[np.inf, 1.0]])])


def test_a_stroke_that_would_be_enormous_is_capped():
    settings = RenderSettings(max_side=500)
    image = render_expression([np.array([[0.0, 0.0], [1e6, 1.0]])], settings)
    assert image.shape[1] <= 500 + FRAME


def _real_pair(ink_folder: str, image_folder: str, expression_id: str) -> tuple[Path, Path]:
    inkml = DATA / "crohme" / ink_folder / f"{expression_id}.inkml"
    image = DATA / "crohme_offline" / image_folder / f"{expression_id}_0.png"
    if not (inkml.exists() and image.exists()):
        pytest.skip(f"shared CROHME data not found at {DATA} (needs {inkml.name} and {image.name})")
    return inkml, image


@pytest.mark.parametrize("ink_folder, expression_id", [
    ("TrainINKML/KAIST", "TrainData2_1_sub_63"),   # integer units in the thousands
    ("TrainINKML/MfrDB", "MfrDB3417"),             # small integer units
])
def test_real_training_files_render_like_the_standard_images(ink_folder, expression_id):
    inkml, image_path = _real_pair(ink_folder, "train", expression_id)
    ours = render_expression(read_inkml(inkml).traces)
    standard = cv2.imread(str(image_path), cv2.IMREAD_GRAYSCALE)
    assert ours.shape == standard.shape
    ink_ours, ink_standard = ours > 127, standard > 127
    assert (ink_ours & ink_standard).sum() / (ink_ours | ink_standard).sum() > 0.95


def test_compare_renders_reports_every_figure():
    _real_pair("TestEM2014GT", "2014", "18_em_0")
    report = compare_renders(DATA / "crohme", DATA / "crohme_offline", limit=5)
    for split in ("2014", "2016"):
        result = report["splits"][split]
        assert result["count"] == 5
        assert result["share_within_10pct"] >= 0.8
        assert abs(result["stroke_width"]["ours"] - result["stroke_width"]["standard"]) < 1
