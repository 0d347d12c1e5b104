"""Our ABM against the official code: the same weights on the same real batches, side by side.

    python -m abm_lib.parity --official CLONE --data prepared/ [--batches 3] [--steps 6] [--out results/parity.json]

The official model (encoder_decoder.py of a clone of XH-B/ABM, imported as official_bench
does; none of its code is in this repository) is built with its own initialisation, and its
weights are converted into ours (official.py). Both run in training mode (BatchNorm on batch
statistics) without dropout, so that they are deterministic, on batches of the official
batching of the real training images. One deliberate difference is taken out first: the
official encoder reads an image's padding as part of the image, ours masks it (encoder.py).
Giving both models an all-ones mask makes the padding (background, 0) part of every image,
and then the two compute the same function. Measured, relative to the largest magnitude of
the quantity compared:

- forward: the L2R and R2L logits at the label positions, and the loss;
- backward: every parameter's gradient (the worst tensor is named);
- training: the loss of each of `steps` optimiser steps of the official recipe (Adadelta,
  clip 100) from the same start, for the official code in fp32, ours in fp32 and ours in the
  runtime's default precision (bf16 on a CPU), and the weights after the last step; as a
  control, ours from weights changed by one part in ten million, which shows how far
  rounding-sized differences alone carry two runs apart (with a learning rate of 1, the
  first Adadelta steps are large and such differences grow from step to step);
- masking: how much the logits move when the batches' real masks are given instead, i.e.
  what ignoring the padding changes (the official outputs depend on the padding, ours do not).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from . import official_bench
from .bench import official_optimizer, optimizer_step
from .checkpoint import atomic_write
from .config import load_config
from .data import Batch, bucket_by_area, collate, filter_trainable, load_examples
from .evaluation import code_and_machine
from .loss import LossConfig, bidirectional_loss
from .model import ABM
from .official import from_official_state_dict, official_config
from .results import parity_rows
from .runtime import Runtime, resolve_runtime
from .vocab import default_vocabulary

PARAMS = {**official_bench.OFFICIAL_PARAMS, "use_dropout": False}
UNCOMPARED = ("attention.energy.bias",)  # gradient zero by construction, see largest_difference
PERTURBATION = 1e-7  # relative change of the control run's starting weights, about float32 rounding
Forward = Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]


def training_batches(split_dir: Path | str, count: int, seed: int = 0) -> list[Batch]:
    """`count` batches of the `paper` recipe's batching of a prepared split, picked at random (seeded)."""
    data = load_config("paper").data
    vocab = default_vocabulary()
    examples, _ = filter_trainable(load_examples(split_dir, vocab, data.label_set), data.max_image_pixels,
                                   data.max_label_length)
    batches = bucket_by_area(examples, data.max_images, data.max_pixels)
    picked = np.random.default_rng(seed).choice(len(batches), size=min(count, len(batches)), replace=False)
    return [collate([examples[i] for i in batches[k]], vocab) for k in sorted(picked)]


def padding_as_image(batch: Batch) -> Batch:
    """The batch with an all-ones image mask: its padding counts as (black) image for both models."""
    return dataclasses.replace(batch, image_mask=torch.ones_like(batch.image_mask))


def our_model_like(state: dict[str, torch.Tensor]) -> ABM:
    """Our ABM holding these official weights, without dropout, in training mode."""
    config = official_config(state)
    config = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, dropout=0.0),
                                 decoder=dataclasses.replace(config.decoder, dropout=0.0))
    model = ABM(config)
    model.load_state_dict(from_official_state_dict(state))
    return model.train()


def our_logits(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    return {direction: output[0] for direction, output in model(batch.images, batch.image_mask, batch.inputs).items()}


def official_logits(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
    return official_bench.official_logits(model, batch, PARAMS)


def batch_loss(logits: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
    """The `paper` loss (both cross-entropies + 0.5 x token-aligned KL)."""
    return bidirectional_loss(logits, batch.targets, batch.target_mask, batch.lengths.to(batch.images.device),
                              LossConfig()).total


def relative_difference(value: torch.Tensor, reference: torch.Tensor) -> float:
    """max |value - reference| / max |reference|."""
    value, reference = value.detach().float(), reference.detach().float()
    return float((value - reference).abs().max() / reference.abs().max().clamp_min(1e-30))


def logit_differences(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], batch: Batch) -> dict[str, float]:
    """Per direction, the relative difference of the logits at the label positions (eos included)."""
    real = batch.target_mask.bool().to(first["l2r"].device)
    return {d: relative_difference(first[d][real], second[d][real]) for d in first}


def largest_difference(reference: dict[str, torch.Tensor], tensors: dict[str, torch.Tensor]) -> tuple[float, str]:
    """The largest per-tensor relative difference to `reference` (same key names), and which tensor.

    The attention energies' biases are left out (UNCOMPARED): a softmax ignores a constant, so
    their gradient is zero but for rounding noise, and comparing noise with noise says nothing.
    """
    return max((relative_difference(tensors[name], reference[name]), name)
               for name in reference if not name.endswith(UNCOMPARED))


def gradient_difference(reference: dict[str, torch.Tensor], model: torch.nn.Module) -> tuple[float, str]:
    """The largest relative difference between `reference` gradients (our key names) and the model's, and where."""
    return largest_difference(reference, {name: p.grad for name, p in model.named_parameters()})


def official_gradients(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The official model's gradients under our parameter names."""
    return from_official_state_dict({name: p.grad for name, p in model.named_parameters()})


def trajectory(model: torch.nn.Module, forward: Forward, batches: list[Batch], steps: int,
               runtime: Runtime) -> list[float]:
    """Losses of `steps` optimiser steps of the official recipe, cycling through the batches."""
    optimizer = official_optimizer(model)
    losses = []
    for step in range(steps):
        batch = batches[step % len(batches)].to(runtime.device, runtime.channels_last)
        with runtime.autocast():
            loss = batch_loss(forward(model, batch), batch)
        optimizer_step(loss, model, optimizer)
        losses.append(loss.item())
    return losses


def weight_difference(official: torch.nn.Module, ours: torch.nn.Module) -> tuple[float, str]:
    """The largest relative difference over all weight tensors (official converted to our names), and where."""
    converted = from_official_state_dict({name: p for name, p in official.named_parameters()})
    return largest_difference(converted, dict(ours.named_parameters()))


def perturbed(model: torch.nn.Module, scale: float = PERTURBATION, seed: int = 0) -> torch.nn.Module:
    """The model with every weight multiplied by (1 + scale * N(0, 1)): a rounding-sized change."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator).to(parameter.device)
            parameter.mul_(1 + scale * noise)
    return model


def compare(official: torch.nn.Module, batches: list[Batch], steps: int, runtime: Runtime) -> dict:
    """Every figure of the module docstring; `official` keeps its starting weights."""
    device = runtime.device
    unmasked = [padding_as_image(batch) for batch in batches]
    start = copy.deepcopy(official.state_dict())
    ours = our_model_like(start).to(device)
    forward, gradients, masking = [], [], []
    for batch, plain in zip(unmasked, batches):
        batch, plain = batch.to(device), plain.to(device)
        for model in (official, ours):
            model.zero_grad()
        reference, mine = official_logits(official, batch), our_logits(ours, batch)
        reference_loss, our_loss = batch_loss(reference, batch), batch_loss(mine, batch)
        reference_loss.backward()
        our_loss.backward()
        worst, name = gradient_difference(official_gradients(official), ours)
        forward.append({**logit_differences(mine, reference, batch), "loss_official": reference_loss.item(),
                        "loss_ours": our_loss.item()})
        gradients.append({"max_relative": worst, "worst_parameter": name})
        with torch.no_grad():
            masking.append(logit_differences(our_logits(ours, plain), mine, plain))
    training = training_comparison(official, start, unmasked, steps, runtime)
    official.load_state_dict(start)
    return {"batches": [batch_shape(batch) for batch in batches], "forward": forward, "gradients": gradients,
            "masking_real_padding": masking, **training,
            "uncompared_parameters": [name for name, _ in ours.named_parameters() if name.endswith(UNCOMPARED)],
            "steps": steps, "device": str(device), "default_precision": runtime.precision}


def training_comparison(official: torch.nn.Module, start: dict, batches: list[Batch], steps: int,
                        runtime: Runtime) -> dict:
    """Loss trajectories from the same start, and the weights after them.

    The control is ours against itself, started from weights changed by one part in ten
    million (PERTURBATION): how far two runs drift apart from a rounding-sized difference alone.
    """
    device, fp32 = runtime.device, Runtime(runtime.device, "fp32")
    ours = our_model_like(start).to(device)
    control = perturbed(our_model_like(start)).to(device)
    losses = {"official_fp32": trajectory(official, official_logits, batches, steps, fp32),
              "ours_fp32": trajectory(ours, our_logits, batches, steps, fp32),
              "ours_fp32_perturbed": trajectory(control, our_logits, batches, steps, fp32)}
    if runtime.precision != "fp32":
        default = runtime.prepare(our_model_like(start))
        losses[f"ours_{runtime.precision}"] = trajectory(default, our_logits, batches, steps, runtime)
    after, where = weight_difference(official, ours)
    control_after, control_where = largest_difference(dict(ours.named_parameters()), dict(control.named_parameters()))
    return {"training_losses": losses,
            "weights_after_training": {"max_relative": after, "worst_parameter": where},
            "control_weights_after_training": {"max_relative": control_after, "worst_parameter": control_where},
            "perturbation": PERTURBATION}


def batch_shape(batch: Batch) -> dict:
    """What a compared batch was: its size, its padded image size, its share of padding, its longest label."""
    real = batch.image_mask.flatten(1).sum(1)
    return {"images": len(batch.ids), "height": batch.images.shape[2], "width": batch.images.shape[3],
            "padding_share": float(1 - real.sum() / batch.image_mask.numel()),
            "longest_label": int(batch.lengths.max())}


def summary_lines(result: dict) -> list[str]:
    """The figures in a few printable lines: the book's table (results.parity_rows), then the losses."""
    _, rows = parity_rows(result)
    worst_masking = max(max(row.values()) for row in result["masking_real_padding"])
    lines = [f"{len(result['batches'])} real training batches, official weights at initialisation, no dropout"]
    lines += [f"{quantity}: max relative difference {value} {where}".rstrip() for quantity, value, where in rows]
    lines.append(f"real masks instead of all-ones: logits move by up to {worst_masking:.2e} (relative)")
    lines += [f"{name:>19}: losses " + " ".join(f"{loss:.4f}" for loss in losses)
              for name, losses in result["training_losses"].items()]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.parity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="a clone of github.com/XH-B/ABM")
    parser.add_argument("--data", type=Path, required=True, help="prepared data (python -m data_prep build)")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--out", type=Path, help="save the figures and their provenance as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    runtime = resolve_runtime(args.device, "auto")
    modules = official_bench.import_official(args.official, ("encoder_decoder",))
    batches = training_batches(args.data / "train", args.batches)
    with official_bench.cuda_calls_stay_put():
        official = official_bench.official_model(modules, runtime.device, PARAMS).train()
        result = compare(official, batches, args.steps, runtime)
    print("\n".join(summary_lines(result)))
    if args.out:
        result["provenance"] = {**code_and_machine(), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                                "data": str(args.data)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, lambda file: json.dump(result, file, indent=1), binary=False)
        print(f"saved {args.out}")


if __name__ == "__main__":
    main()
