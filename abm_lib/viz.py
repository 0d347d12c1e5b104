"""Figures for the book: training curves from a run's metrics log, attention over the image.

Plots only. The numbers come from `metrics.jsonl` (one line per epoch, written by
training.Trainer) and from `Hypothesis.attention` (decoding.py: one map per decoding step
over the image's real feature cells); nothing here runs the model.

Each attention cell covers a 16 x 16 pixel block of the input (the encoder's stride), so a
map is shown upsampled x16 by repetition and cropped to the image: what you see is exactly
the grid the decoder chose from. Images are drawn dark ink on white for reading; the model
itself reads white ink on black.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from .encoder import STRIDE
from .training import read_metrics  # noqa: F401  (re-exported: the book reads logs through viz)


END_LABEL = "<end>"  # the step that emitted the end token (eos for L2R, sos for R2L)
ATTENTION_COLOUR = "tab:red"
COVERAGE_COLOUR = "tab:blue"


# ----------------------------------------------------------------- training curves
def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs completed, values) of one metric, leaving out rows without a finite value."""
    points = [(row.get("epoch", index) + 1, row[key]) for index, row in enumerate(rows)
              if isinstance(row.get(key), (int, float)) and math.isfinite(row[key])]
    if not points:
        return np.empty(0), np.empty(0)
    epochs, values = zip(*points)
    return np.asarray(epochs, dtype=float), np.asarray(values, dtype=float)


def plot_training_curves(metrics_rows: list[dict], ax: Sequence | None = None) -> Figure:
    """Three panels from metrics.jsonl rows: training loss terms, validation loss and ExpRate, learning rate.

    `ax`: None (a new figure) or three Axes to draw into. Terms a run does not have (R2L and
    KL in a single-decoder run) are left out. Returns the figure.
    """
    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    else:
        axes = list(np.ravel(ax))
        if len(axes) != 3:
            raise ValueError(f"plot_training_curves draws three panels; got {len(axes)} axes")
        fig = axes[0].figure
    losses, valid, rate = axes
    _plot_losses(losses, metrics_rows)
    _plot_validation(valid, metrics_rows)
    _plot_learning_rate(rate, metrics_rows)
    fig.tight_layout()
    return fig


def _plot_losses(ax, rows: list[dict]) -> None:
    terms = {"train_loss": "total", "train_l2r": "CE L2R", "train_r2l": "CE R2L", "train_kl": "KL (T\u00b2-scaled)"}
    single_decoder = all(not row.get("train_r2l") for row in rows)
    for key, label in terms.items():
        if single_decoder and key in ("train_r2l", "train_kl"):
            continue
        epochs, values = _series(rows, key)
        if len(values):
            ax.plot(epochs, values, marker="." if len(values) < 30 else None, label=label)
    ax.set_title("training loss (epoch means)")
    ax.set_xlabel("epochs completed")
    if ax.lines:
        ax.legend(fontsize=8)


def _plot_validation(ax, rows: list[dict]) -> None:
    epochs, values = _series(rows, "valid_loss")
    ax.plot(epochs, values, color="tab:gray", marker="." if len(values) < 30 else None)
    ax.set_ylabel("L2R cross-entropy", color="tab:gray")
    ax.set_xlabel("epochs completed")
    rate_ax = ax.twinx()
    greedy = greedy_validations(rows)
    epochs, rates = _series(greedy, "valid_exprate")
    rate_ax.plot(epochs, rates, color="tab:green", marker="." if len(rates) < 30 else None)
    beam_epochs, beam_rates = _series(beam_validations(rows), "valid_exprate")
    beam = len(beam_rates) > 0
    if beam:
        rate_ax.plot(beam_epochs, beam_rates, linestyle="none", marker="*", markersize=10, color="tab:green")
    epochs, wers = _series(greedy, "valid_wer")
    if len(wers):
        rate_ax.plot(epochs, wers, color="tab:green", linestyle="--", marker="." if len(wers) < 30 else None)
    rate_ax.set_ylabel("ExpRate, WER (%)", color="tab:green")
    ax.set_title("validation: loss (grey), ExpRate (green" + (", * beam 10" if beam else ", greedy")
                 + (", WER dashed)" if len(wers) else ")"))


def greedy_validations(rows: list[dict]) -> list[dict]:
    """The rows of the epochs validated with greedy search, each with its epoch. Older logs hold
    the beam-10 ExpRate and WER in place of the greedy ones at beam epochs: those are left out."""
    return [{"epoch": index, **row} for index, row in enumerate(rows) if row.get("valid_decoding", "greedy") == "greedy"]


def beam_validations(rows: list[dict]) -> list[dict]:
    """{epoch, valid_exprate} of the epochs validated with beam 10: logged beside the greedy
    figure (valid_exprate_beam10), or in older logs in its place (valid_decoding "beam10")."""
    found = []
    for index, row in enumerate(rows):
        rate = row.get("valid_exprate_beam10")
        if rate is None and row.get("valid_decoding", "greedy") != "greedy":
            rate = row.get("valid_exprate")
        if rate is not None:
            found.append({"epoch": row.get("epoch", index), "valid_exprate": rate})
    return found


def _plot_learning_rate(ax, rows: list[dict]) -> None:
    epochs, values = _series(rows, "lr")
    ax.step(epochs, values, where="post", color="tab:purple")
    if len(values) and values.min() > 0:
        ax.set_yscale("log", base=2)
    ax.set_title("learning rate (after the epoch)")
    ax.set_xlabel("epochs completed")


def plot_attention_focus(runs: dict[str, list[dict]], ax=None) -> Figure:
    """Validation attention focus by epoch (`valid_attention_focus`), one line per run.

    runs: name -> metrics rows. Focus is 1 - entropy / log(cells) of the L2R attention under
    teacher forcing (attention.attention_focus): 0 while the decoder looks everywhere at
    once, towards 1 as each step settles on a few cells. Rows without it are left out.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.2)) if ax is None else (ax.figure, ax)
    for name, rows in runs.items():
        epochs, values = _series(rows, "valid_attention_focus")
        if len(values):
            ax.plot(epochs, values, marker="o" if len(values) < 30 else None, label=name)
    ax.set_ylim(0, 1)
    ax.set_xlabel("epochs completed")
    ax.set_ylabel("focus (0 uniform, 1 one cell)")
    ax.set_title("validation attention focus")
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ attention
def attention_on_image(image: np.ndarray, attention) -> np.ndarray:
    """(steps, h, w) attention over feature cells -> (steps, H, W) over the image's pixels.

    Each cell is repeated over its 16 x 16 pixel block, then the result is cropped to the
    image (the last row and column of cells may extend past it).
    """
    maps = np.asarray(attention.float().cpu() if hasattr(attention, "float") else attention, dtype=np.float32)
    if maps.ndim != 3:
        raise ValueError(f"attention must be (steps, h, w), got shape {maps.shape}")
    height, width = image.shape[:2]
    if maps.shape[1] * STRIDE < height or maps.shape[2] * STRIDE < width:
        raise ValueError(f"attention grid {maps.shape[1:]} x {STRIDE} does not cover an image of {image.shape[:2]}")
    upsampled = maps.repeat(STRIDE, axis=1).repeat(STRIDE, axis=2)
    return upsampled[:, :height, :width]


def step_labels(hypothesis, tokens: Sequence[str]) -> list[str]:
    """The token emitted at each decoding step: `tokens`, then `<end>` if the hypothesis finished."""
    tokens = list(tokens)
    if len(tokens) != len(hypothesis.token_ids):
        raise ValueError(f"{len(tokens)} tokens given for a hypothesis of {len(hypothesis.token_ids)}; pass the "
                         "hypothesis' own tokens in decoding order (vocab.tokens[i] for i in hypothesis.token_ids)")
    return tokens + ([END_LABEL] if hypothesis.finished else [])


def _paper(image: np.ndarray) -> np.ndarray:
    """The image as dark ink on white, values in [0, 1]."""
    values = np.asarray(image, dtype=np.float32)
    return 1.0 - values / max(float(values.max()), 1.0)


def _overlay(values: np.ndarray, colour: str, scale: float | None = None) -> np.ndarray:
    """An RGBA layer of one colour whose opacity follows `values` (0 transparent, the maximum 75%)."""
    scale = scale if scale is not None else float(values.max())
    layer = np.zeros((*values.shape, 4), dtype=np.float32)
    layer[..., :3] = to_rgb(colour)
    layer[..., 3] = 0.75 * np.clip(values / scale, 0, 1) if scale > 0 else 0.0
    return layer


def _draw_panel(ax, image: np.ndarray, values: np.ndarray, colour: str, title: str):
    ax.imshow(_paper(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    artist = ax.imshow(_overlay(values, colour), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return artist


def _chosen_steps(steps, count: int) -> list[int]:
    if steps is None:
        return list(range(count))
    if isinstance(steps, int):
        return list(range(min(steps, count)))
    chosen = [int(s) for s in steps]
    outside = [s for s in chosen if not 0 <= s < count]
    if outside:
        raise ValueError(f"steps {outside} outside 0..{count - 1}")
    return chosen


def attention_figure(image: np.ndarray, hypothesis, tokens: Sequence[str], steps=None, columns: int = 4) -> Figure:
    """One panel per decoding step (its attention over the image, titled with the token it emitted),
    then one panel of the coverage: the attention summed over steps 0..last shown step.

    `tokens`: the hypothesis' tokens in decoding order (strings); `steps`: None for all, an int
    for the first n, or a list of step indices. Returns the figure (len(fig.axes) = panels).
    """
    if hypothesis.attention is None:
        raise ValueError("the hypothesis has no attention maps; decode with DecodingOptions(return_attention=True)")
    labels = step_labels(hypothesis, tokens)
    maps = attention_on_image(image, hypothesis.attention)
    chosen = _chosen_steps(steps, len(maps))
    panels = len(chosen) + 1
    columns = max(1, min(columns, panels))
    rows = math.ceil(panels / columns)
    height, width = image.shape[:2]
    panel_width = 3.3
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(panel_width * columns, rows * (panel_width * height / width + 0.45)))
    flat = list(axes.ravel())
    for ax, step in zip(flat, chosen):
        _draw_panel(ax, image, maps[step], ATTENTION_COLOUR, f"step {step}: {labels[step]}")
    last = max(chosen) if chosen else -1
    coverage = maps[: last + 1].sum(axis=0)
    _draw_panel(flat[len(chosen)], image, coverage, COVERAGE_COLOUR, f"coverage after step {last}")
    for ax in flat[panels:]:
        ax.remove()
    fig.tight_layout()
    return fig


def attention_explorer(image: np.ndarray, hypothesis, tokens: Sequence[str]):
    """An ipywidgets VBox: a slider over decoding steps, the step's token, and two panels
    (attention at that step; coverage = attention summed over steps 0..t) over the image.

    The figure is drawn once and updated in place; `box.figure` holds it.
    """
    import ipywidgets as widgets
    from IPython.display import display

    if hypothesis.attention is None:
        raise ValueError("the hypothesis has no attention maps; decode with DecodingOptions(return_attention=True)")
    labels = step_labels(hypothesis, tokens)
    maps = attention_on_image(image, hypothesis.attention)
    coverage = np.cumsum(maps, axis=0)
    height, width = image.shape[:2]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, max(2.0, 5.5 * height / width + 0.6)))
    plt.close(fig)  # shown through the Output widget only, not again by the inline backend
    attention_layer = _draw_panel(left, image, maps[0], ATTENTION_COLOUR, "")
    coverage_layer = _draw_panel(right, image, coverage[0], COVERAGE_COLOUR, "")
    fig.tight_layout()

    slider = widgets.IntSlider(value=0, min=0, max=len(maps) - 1, step=1, description="step",
                               continuous_update=False, layout=widgets.Layout(width="60%"))
    caption = widgets.HTML()
    output = widgets.Output()

    def show(step: int) -> None:
        attention_layer.set_data(_overlay(maps[step], ATTENTION_COLOUR))
        coverage_layer.set_data(_overlay(coverage[step], COVERAGE_COLOUR, scale=float(coverage[-1].max())))
        left.set_title(f"step {step}: attention while emitting {labels[step]}", fontsize=10)
        right.set_title(f"coverage: attention summed over steps 0..{step}", fontsize=10)
        emitted = " ".join(labels[: step + 1])
        caption.value = (f"step {step} of {len(maps) - 1}: emitted <code>{html.escape(labels[step])}</code>"
                         f" &nbsp; so far: <code>{html.escape(emitted)}</code>")
        with output:
            output.clear_output(wait=True)
            display(fig)

    slider.observe(lambda change: show(change["new"]), names="value")
    show(0)
    box = widgets.VBox([slider, caption, output])
    box.figure = fig
    return box


# --------------------------------------------------------------------- the method
def architecture_diagram() -> Figure:
    """ABM at a glance: a shared DenseNet encoder, two attention decoders with AAM (L2R, R2L),
    the cross-entropy of each against the label and the KL term between them."""
    fig, ax = plt.subplots(figsize=(12, 4.6))
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 4.6)
    ax.axis("off")

    def box(x, y, w, h, text, colour):
        ax.add_patch(plt.Rectangle((x, y), w, h, facecolor=colour, edgecolor="black", linewidth=1.0))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    def arrow(start, end, text="", style="-|>", colour="black", **text_options):
        ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": style, "color": colour, "linewidth": 1.2})
        if text:
            ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, text, fontsize=8, ha="center",
                    color=colour, **text_options)

    box(0.1, 1.8, 1.3, 1.0, "image\nH x W", "#f2f2f2")
    box(2.0, 1.5, 1.8, 1.6, "DenseNet-B\nencoder\n(shared)", "#dbe9f6")
    box(4.4, 1.8, 1.3, 1.0, "features F\nH/16 x W/16\nx 684", "#f2f2f2")
    box(6.4, 3.0, 2.5, 1.2, "L2R decoder\nattention GRU + AAM\n(coverage 11x11, 5x5)", "#fde2c8")
    box(6.4, 0.4, 2.5, 1.2, "R2L decoder\nattention GRU + AAM\n(coverage 11x11, 5x5)", "#e3d7f0")
    box(9.7, 3.2, 2.2, 0.8, "predicts  x ^ { 2 } <eos>\nCE with the label", "#ffffff")
    box(9.7, 0.6, 2.2, 0.8, "predicts  } 2 { ^ x <sos>\nCE with the reversed label", "#ffffff")
    arrow((1.4, 2.3), (2.0, 2.3))
    arrow((3.8, 2.3), (4.4, 2.3))
    arrow((5.7, 2.5), (6.4, 3.5))
    arrow((5.7, 2.1), (6.4, 1.0))
    arrow((8.9, 3.6), (9.7, 3.6))
    arrow((8.9, 1.0), (9.7, 1.0))
    arrow((7.65, 3.0), (7.65, 1.6), "", style="<|-|>", colour="tab:red")
    ax.text(7.8, 2.3, "mutual distillation\nKL between the two\npredictions of each token\n(training only)",
            fontsize=8, color="tab:red", va="center")
    ax.text(6.4, 4.35, "inference: L2R branch only, beam search (width 10)", fontsize=8, color="tab:orange")
    fig.tight_layout()
    return fig
