"""The book's figures: panel counts, upsampling, the explorer's slider, curves from a metrics log."""
from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from abm_lib.decoding import Hypothesis  # noqa: E402
from abm_lib.viz import (END_LABEL, attention_explorer, attention_figure, attention_on_image,  # noqa: E402
                         plot_training_curves, read_metrics, step_labels)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def hypothesis(tokens: int = 5, finished: bool = True, height: int = 3, width: int = 7) -> Hypothesis:
    """A hypothesis whose step t attends to one cell, moving right along the middle row."""
    steps = tokens + int(finished)
    attention = torch.zeros(steps, height, width)
    for t in range(steps):
        attention[t, height // 2, t % width] = 1.0
    return Hypothesis(list(range(2, 2 + tokens)), -1.0, -0.2, finished, attention)


IMAGE = np.zeros((40, 100), dtype=np.uint8)  # 3 x 7 cells of 16 px, the last ones partly outside
TOKENS = ["x", "^", "{", "2", "}"]


def test_attention_is_upsampled_by_blocks_of_16_and_cropped_to_the_image():
    maps = attention_on_image(IMAGE, hypothesis().attention)
    assert maps.shape == (6, 40, 100)
    assert maps[0, 16:32, 0:16].min() == 1.0 and maps[0].sum() == 16 * 16  # one whole cell, nothing else
    assert maps[1, 16:32, 16:32].min() == 1.0


def test_attention_that_does_not_cover_the_image_is_refused():
    with pytest.raises(ValueError, match="does not cover"):
        attention_on_image(np.zeros((80, 100), dtype=np.uint8), hypothesis().attention)


def test_step_labels_end_with_the_end_token_only_when_finished():
    assert step_labels(hypothesis(), TOKENS) == TOKENS + [END_LABEL]
    assert step_labels(hypothesis(finished=False), TOKENS) == TOKENS
    with pytest.raises(ValueError, match="tokens given"):
        step_labels(hypothesis(), TOKENS[:3])


def test_attention_figure_has_one_panel_per_step_plus_coverage():
    fig = attention_figure(IMAGE, hypothesis(), TOKENS)
    assert len(fig.axes) == 6 + 1
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "step 0: x" and titles[5] == f"step 5: {END_LABEL}"
    assert titles[-1] == "coverage after step 5"


def test_attention_figure_shows_the_chosen_steps():
    assert len(attention_figure(IMAGE, hypothesis(), TOKENS, steps=3).axes) == 3 + 1
    fig = attention_figure(IMAGE, hypothesis(), TOKENS, steps=[1, 4])
    assert [ax.get_title() for ax in fig.axes] == ["step 1: ^", "step 4: }", "coverage after step 4"]
    with pytest.raises(ValueError, match="outside"):
        attention_figure(IMAGE, hypothesis(), TOKENS, steps=[9])


def test_attention_figure_needs_attention_maps():
    bare = Hypothesis([2, 3], -1.0, -0.3, True, None)
    with pytest.raises(ValueError, match="return_attention"):
        attention_figure(IMAGE, bare, ["x", "y"])


def test_explorer_slider_spans_every_step_and_moving_it_updates_the_titles():
    pytest.importorskip("ipywidgets")
    box = attention_explorer(IMAGE, hypothesis(), TOKENS)
    slider, caption, _ = box.children
    assert (slider.min, slider.max) == (0, 5)  # 6 steps: 5 tokens and the end token
    left, right = box.figure.axes[:2]
    assert "step 0" in left.get_title() and "x" in caption.value
    slider.value = 3
    assert left.get_title() == "step 3: attention while emitting 2"
    assert right.get_title() == "coverage: attention summed over steps 0..3"
    assert caption.value.startswith("step 3 of 5: emitted <code>2</code>")
    slider.value = 5
    assert END_LABEL in left.get_title() and "&lt;end&gt;" in caption.value  # escaped for HTML


def test_explorer_coverage_grows_with_the_step():
    pytest.importorskip("ipywidgets")
    box = attention_explorer(IMAGE, hypothesis(), TOKENS)
    slider = box.children[0]
    coverage_layer = box.figure.axes[1].images[-1]
    before = np.asarray(coverage_layer.get_array())[..., 3].sum()
    slider.value = 4
    after = np.asarray(coverage_layer.get_array())[..., 3].sum()
    assert after > before


ROWS = [{"epoch": e, "train_loss": 5.0 - e, "train_l2r": 2.0, "train_r2l": 2.1, "train_kl": 0.5,
         "valid_loss": 3.0 - 0.1 * e, "valid_exprate": 10.0 * e, "valid_decoding": "beam10" if e == 2 else "greedy",
         "lr": 1.0 if e < 2 else 0.5} for e in range(3)]


def test_training_curves_draw_three_panels_with_every_term():
    fig = plot_training_curves(ROWS)
    losses, valid, rate = fig.axes[:3]
    assert [line.get_label() for line in losses.lines] == ["total", "CE L2R", "CE R2L", "KL (T\u00b2-scaled)"]
    assert list(losses.lines[0].get_xdata()) == [1, 2, 3]  # epochs completed
    assert list(rate.lines[0].get_ydata()) == [1.0, 1.0, 0.5]
    assert len(fig.axes) == 4  # the ExpRate axis is a twin of the validation one


def test_beam_validations_are_starred_and_kept_off_the_greedy_line():
    rows = [*ROWS, {**ROWS[2], "epoch": 3, "valid_exprate": 30.0, "valid_decoding": "greedy",
                    "valid_exprate_beam10": 33.0}]
    valid_rate = plot_training_curves(rows).axes[3]
    greedy_line, stars = valid_rate.lines[:2]
    assert list(greedy_line.get_xdata()) == [1, 2, 4] and list(greedy_line.get_ydata()) == [0.0, 10.0, 30.0]
    assert list(stars.get_xdata()) == [3, 4] and list(stars.get_ydata()) == [20.0, 33.0]


def test_training_curves_of_a_single_decoder_run_leave_out_r2l_and_kl():
    rows = [{**row, "train_r2l": 0.0, "train_kl": 0.0} for row in ROWS]
    fig = plot_training_curves(rows)
    assert [line.get_label() for line in fig.axes[0].lines] == ["total", "CE L2R"]


def test_training_curves_draw_into_given_axes_and_accept_no_rows():
    fig, axes = plt.subplots(1, 3)
    assert plot_training_curves([], axes) is fig
    with pytest.raises(ValueError, match="three panels"):
        plot_training_curves(ROWS, axes[:2])


def test_read_metrics_skips_only_a_cut_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_metrics(path) == []
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS) + '{"epoch": 3, "train')
    assert read_metrics(path) == ROWS
    path.write_text('{"epoch": 0\n' + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        read_metrics(path)


def test_architecture_diagram_names_the_parts():
    from abm_lib.viz import architecture_diagram

    texts = " ".join(text.get_text() for text in architecture_diagram().axes[0].texts)
    for part in ("DenseNet-B", "L2R decoder", "R2L decoder", "KL", "AAM"):
        assert part in texts


def test_validation_wer_is_drawn_dashed_when_the_log_has_it():
    rows = [{**row, "valid_wer": 90.0 - 10 * row["epoch"]} for row in ROWS]
    twin = plot_training_curves(rows).axes[3]
    dashed = [line for line in twin.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and list(dashed[0].get_ydata()) == [90.0, 80.0]  # epoch 2's WER is a beam figure
    assert "WER dashed" in plot_training_curves(rows).axes[1].get_title()
    assert "WER" not in plot_training_curves(ROWS).axes[1].get_title()  # older logs have no WER


def test_attention_focus_is_drawn_per_run_from_the_epochs_that_logged_it():
    from abm_lib.viz import plot_attention_focus

    logged = [{**row, "valid_attention_focus": 0.1 * row["epoch"]} for row in ROWS[1:]]
    ax = plot_attention_focus({"abm": ROWS[:1] + logged, "old log": ROWS}).axes[0]
    assert [line.get_label() for line in ax.lines] == ["abm"]
    assert list(ax.lines[0].get_xdata()) == [2, 3] and list(ax.lines[0].get_ydata()) == [0.1, 0.2]
