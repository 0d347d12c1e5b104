"""The ABM network: official sizes and parameter counts, padding invariance, directions."""
from __future__ import annotations

import math

import pytest
import torch

from abm_lib.data import pad_images
from abm_lib.model import ABM, ABMConfig, count_parameters, inference_parameters

from conftest import SHARED, tiny_config

OFFICIAL_TOTAL, OFFICIAL_INFERENCE = 8_428_988, 5_704_138  # printed by the official train.py's config


def official_counts_from_key_list() -> tuple[int, int]:
    """Sum the official state dict's shapes (BatchNorm running statistics are not parameters)."""
    path = SHARED / "docs" / "official_state_dict.tsv"
    if not path.is_file():
        pytest.skip(f"{path} not found (the shared docs are absent in this checkout)")
    total = inference = 0
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape = line.split("\t")
        if "running_" in key or "num_batches_tracked" in key:
            continue
        size = math.prod(eval(shape))  # shapes are written as Python tuples
        total += size
        inference += 0 if key.split(".")[0].endswith("2") else size
    return total, inference


def test_parameter_counts_equal_the_official_model():
    model = ABM()
    assert count_parameters(model) == OFFICIAL_TOTAL
    assert inference_parameters(model) == OFFICIAL_INFERENCE
    assert official_counts_from_key_list() == (OFFICIAL_TOTAL, OFFICIAL_INFERENCE)


def test_official_feature_shape_and_channels():
    model = ABM().eval()
    images, mask = torch.zeros(1, 1, 96, 272), torch.ones(1, 96, 272)
    features, feature_mask = model.encode(images, mask)
    assert features.shape == (1, 684, 6, 17) and feature_mask.shape == (1, 6, 17)


def test_l2r_only_model_has_no_r2l_decoder():
    model = ABM(tiny_config(directions=("l2r",)))
    assert set(model.decoders) == {"l2r"}
    with pytest.raises(ValueError):
        ABMConfig(directions=("r2l",))


def test_padding_does_not_change_logits():
    """An image alone and the same image padded in a batch with larger ones give the same logits."""
    torch.manual_seed(0)
    model = ABM(tiny_config()).eval()
    generator = torch.Generator().manual_seed(3)
    small = (torch.rand(37, 90, generator=generator) > 0.8).numpy().astype("uint8") * 255
    large = (torch.rand(70, 200, generator=generator) > 0.8).numpy().astype("uint8") * 255
    ids = torch.tensor([[0, 5, 9, 17, 3]])
    alone_images, alone_mask = pad_images([small])
    batch_images, batch_mask = pad_images([large, small])
    with torch.no_grad():
        alone = model(alone_images, alone_mask, {"l2r": ids, "r2l": ids})
        batch = model(batch_images, batch_mask, {"l2r": ids.repeat(2, 1), "r2l": ids.repeat(2, 1)})
    for direction in ("l2r", "r2l"):
        torch.testing.assert_close(batch[direction][0][1], alone[direction][0][0], atol=1e-5, rtol=1e-5)
        attention_alone = alone[direction][1][0]
        h, w = attention_alone.shape[-2:]
        torch.testing.assert_close(batch[direction][1][1][:, :h, :w], attention_alone, atol=1e-6, rtol=1e-5)
        assert batch[direction][1][1][:, h:, :].abs().max() == 0  # no attention on padding


def test_encoder_rejects_sizes_that_are_not_multiples_of_16():
    model = ABM(tiny_config())
    with pytest.raises(ValueError, match="multiple of 16"):
        model.encode(torch.zeros(1, 1, 50, 64), torch.ones(1, 50, 64))


def test_steps_stop_each_row_at_its_length_and_change_no_real_position():
    """forward(..., steps) computes each row only up to its own length: real positions, the loss
    over them and its gradients equal those of the full computation; later positions attend nowhere."""
    from abm_lib.data import collate, Example
    from abm_lib.loss import LossConfig, bidirectional_loss
    from abm_lib.vocab import default_vocabulary

    torch.manual_seed(0)
    model = ABM(tiny_config()).eval()  # eval: no dropout, so both passes see the same network
    generator = torch.Generator().manual_seed(5)
    labels = [[7, 9, 11], [5, 6, 7, 8, 9, 10, 11], [12], [20, 21, 22, 23]]  # unsorted lengths
    examples = [Example(str(i), ((torch.rand(40 + 9 * i, 70, generator=generator) > 0.85).numpy() * 255).astype("uint8"),
                        label) for i, label in enumerate(labels)]
    batch = collate(examples, default_vocabulary())
    steps = batch.lengths + 1

    def run(with_steps: bool):
        model.zero_grad()
        outputs = model(batch.images, batch.image_mask, batch.inputs, steps if with_steps else None)
        terms = bidirectional_loss({d: o[0] for d, o in outputs.items()}, batch.targets, batch.target_mask,
                                   batch.lengths, LossConfig())
        terms.total.backward()
        return outputs, terms.total.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    full, full_loss, full_grads = run(False)
    short, short_loss, short_grads = run(True)
    real = batch.target_mask.bool()
    for direction in ("l2r", "r2l"):
        torch.testing.assert_close(short[direction][0][real], full[direction][0][real], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(short[direction][1][real], full[direction][1][real], atol=1e-6, rtol=1e-5)
        assert short[direction][1][~real].abs().max() == 0
    torch.testing.assert_close(short_loss, full_loss, atol=1e-5, rtol=1e-5)
    for name, grad in full_grads.items():
        torch.testing.assert_close(short_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_steps_outside_the_input_length_are_refused():
    model = ABM(tiny_config())
    images, mask = torch.zeros(2, 1, 32, 32), torch.ones(2, 32, 32)
    ids = torch.zeros(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        model(images, mask, {"l2r": ids}, steps=torch.tensor([5, 2]))
