"""The encoder's masked dropout: drop rate, scaling, image mask, eval mode, memory layouts."""
from __future__ import annotations

import pytest
import torch

from abm_lib.encoder import MaskedDropout


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dropout_keeps_four_fifths_scaled_and_zeroes_the_padding(dtype, channels_last):
    torch.manual_seed(0)
    x = torch.ones(4, 32, 40, 60, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mask = torch.ones(4, 1, 40, 60)
    mask[:, :, 30:, 45:] = 0
    dropout = MaskedDropout(0.2).train()
    y = dropout(x, mask).float()
    scale = torch.tensor(1 / (1 - 0.2), dtype=dtype).float()
    assert set(y.unique().tolist()) == {0.0, scale.item()}
    assert not y[:, :, 30:, 45:].any()  # the padding is zero
    inside = y[:, :, :30] != 0
    assert inside.float().mean().item() == pytest.approx(0.8, abs=0.005)
    per_channel = inside.float().mean(dim=(0, 2, 3))  # no channel dropped more than another
    assert (per_channel - 0.8).abs().max().item() < 0.03
    assert dropout(x).float().eq(0).float().mean().item() == pytest.approx(0.2, abs=0.005)  # no mask


def test_dropout_in_eval_mode_only_applies_the_mask():
    x = torch.randn(2, 3, 8, 8)
    mask = torch.ones(2, 1, 8, 8)
    mask[1, :, 4:] = 0
    dropout = MaskedDropout(0.2).eval()
    assert torch.equal(dropout(x, mask), x * mask) and torch.equal(dropout(x), x)


def test_random_words_follow_torch_seed_and_are_uniform_bits():
    from abm_lib.encoder import random_words

    torch.manual_seed(3)
    first = random_words(50_000, torch.device("cpu"))
    torch.manual_seed(3)
    assert torch.equal(random_words(50_000, torch.device("cpu")), first)  # reproducible from torch's seed
    assert not torch.equal(random_words(50_000, torch.device("cpu")), first)  # and a new draw each call
    bits = (first[:, None] >> torch.arange(64)) & 1
    assert (bits.float().mean(0) - 0.5).abs().max().item() < 0.01  # every bit position fair
