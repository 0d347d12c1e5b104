"""The side-by-side check against the official code, run here against a stand-in with official names.

The stand-in holds its weights under the official state-dict names and computes with our
model through `torch.func.functional_call`, so `compare` must find it equal to ours; one
that adds a small error must be caught. The real official code is used when
ABM_OFFICIAL_CODE names a clone of github.com/XH-B/ABM (it is not shipped).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call

from abm_lib import official_bench, parity
from abm_lib.data import Example, collate, load_examples
from abm_lib.model import ABM
from abm_lib.official import from_official_state_dict, to_official_state_dict
from abm_lib.runtime import Runtime
from abm_lib.vocab import default_vocabulary

from conftest import tiny_config


def tiny_without_dropout() -> ABM:
    config = tiny_config()
    config = dataclasses.replace(config, encoder=dataclasses.replace(config.encoder, dropout=0.0),
                                 decoder=dataclasses.replace(config.decoder, dropout=0.0, vocab_size=113))
    torch.manual_seed(0)
    return ABM(config).train()


class StandIn(nn.Module):
    """Weights under official names; forward with the official signature, computed by our model."""

    def __init__(self, model: ABM, error: float = 0.0):
        super().__init__()
        self.model, self.error = [model], error  # a list: not a submodule, its weights are not ours
        for key, tensor in to_official_state_dict(model.state_dict()).items():
            *path, leaf = key.split(".")
            node = self
            for part in path:
                if not hasattr(node, part):
                    node.add_module(part, nn.Module())
                node = getattr(node, part)
            if tensor.is_floating_point() and "running_" not in leaf:
                node.register_parameter(leaf, nn.Parameter(tensor.clone()))
            else:
                node.register_buffer(leaf, tensor.clone())

    def forward(self, params, x, x_mask, y, y_mask, y_reverse, y_mask_reverse):
        state = from_official_state_dict(dict(self.named_parameters()) | dict(self.named_buffers()))
        outputs = functional_call(self.model[0], state, (x, x_mask, {"l2r": y, "r2l": y_reverse}))
        l2r, r2l = outputs["l2r"][0], outputs["r2l"][0]
        return l2r * (1 + self.error), None, r2l, None


def sample_batches() -> list:
    generator = torch.Generator().manual_seed(1)
    vocab = default_vocabulary()
    batches = []
    for width in (48, 64):
        examples = [Example(str(k), (torch.rand(32 - 4 * k, width + 8 * k, generator=generator) > 0.8).numpy()
                            .astype("uint8") * 255,
                            torch.randint(2, 113, (3 + k,), generator=generator).tolist()) for k in range(2)]
        batches.append(collate(examples, vocab))
    return batches


def test_padding_becomes_image_and_nothing_else_changes():
    batch = sample_batches()[0]
    assert batch.image_mask.min() == 0  # the two images differ in size: the smaller one is padded
    unmasked = parity.padding_as_image(batch)
    assert bool((unmasked.image_mask == 1).all())
    assert unmasked.images is batch.images and unmasked.inputs is batch.inputs


def test_a_faithful_implementation_is_found_equal():
    result = parity.compare(StandIn(tiny_without_dropout()), sample_batches(), steps=3,
                            runtime=Runtime(torch.device("cpu"), "bf16"))
    assert max(max(row["l2r"], row["r2l"]) for row in result["forward"]) < 1e-6
    assert max(row["max_relative"] for row in result["gradients"]) < 1e-5
    losses = result["training_losses"]
    assert losses["official_fp32"] == pytest.approx(losses["ours_fp32"], rel=1e-6)
    assert losses["ours_bf16"] == pytest.approx(losses["ours_fp32"], rel=0.05)
    assert losses["ours_bf16"] != losses["ours_fp32"]  # bf16 really ran
    assert result["weights_after_training"]["max_relative"] < 1e-4
    assert losses["ours_fp32_perturbed"] != losses["ours_fp32"]  # the control really starts elsewhere
    assert losses["ours_fp32_perturbed"] == pytest.approx(losses["ours_fp32"], rel=1e-4)
    assert 0 < result["control_weights_after_training"]["max_relative"]
    assert max(max(row.values()) for row in result["masking_real_padding"]) > 0  # masking the padding matters


def test_an_error_of_one_percent_is_caught():
    result = parity.compare(StandIn(tiny_without_dropout(), error=0.01), sample_batches(), steps=1,
                            runtime=Runtime(torch.device("cpu"), "fp32"))
    assert max(row["l2r"] for row in result["forward"]) == pytest.approx(0.01 / 1.01, rel=1e-3)  # relative to official
    assert max(row["r2l"] for row in result["forward"]) < 1e-6
    assert max(row["max_relative"] for row in result["gradients"]) > 1e-3


def test_compare_leaves_the_official_weights_as_they_were():
    official = StandIn(tiny_without_dropout())
    before = {k: v.clone() for k, v in official.state_dict().items()}
    parity.compare(official, sample_batches()[:1], steps=2, runtime=Runtime(torch.device("cpu"), "fp32"))
    assert all(torch.equal(before[k], v) for k, v in official.state_dict().items())


def test_the_attention_energy_bias_is_left_out_of_the_comparison_and_only_it():
    reference = {"decoders.l2r.attention.energy.bias": torch.tensor([1e-12]), "large": torch.tensor([1.0, -2.0])}
    noise = {"decoders.l2r.attention.energy.bias": torch.tensor([-1e-12]), "large": torch.tensor([1.0, -2.0])}
    assert parity.largest_difference(reference, noise) == (0.0, "large")
    assert parity.largest_difference(reference, noise | {"large": torch.tensor([1.1, -2.0])}) \
        == (pytest.approx(0.05), "large")


def test_training_batches_are_the_paper_batching_and_reproducible(sample_data):
    first = parity.training_batches(sample_data / "train", 2)
    again = parity.training_batches(sample_data / "train", 2)
    assert len(first) == 2 and all(len(batch.ids) <= 16 for batch in first)
    assert [batch.ids for batch in first] == [batch.ids for batch in again]
    assert all(batch.images.shape[2] % 16 == 0 and batch.images.shape[3] % 16 == 0 for batch in first)


@pytest.mark.skipif(not os.environ.get("ABM_OFFICIAL_CODE"),
                    reason="set ABM_OFFICIAL_CODE to a clone of github.com/XH-B/ABM to compare with the official code")
def test_the_official_code_computes_what_ours_does(sample_data):
    modules = official_bench.import_official(Path(os.environ["ABM_OFFICIAL_CODE"]), ("encoder_decoder",))
    examples = sorted(load_examples(sample_data / "train", default_vocabulary()), key=lambda e: e.image.size)
    batches = [collate(examples[:3], default_vocabulary())]  # the smallest images: a quick check
    with official_bench.cuda_calls_stay_put():
        official = official_bench.official_model(modules, torch.device("cpu"), parity.PARAMS).train()
        result = parity.compare(official, batches, steps=2, runtime=Runtime(torch.device("cpu"), "fp32"))
    assert max(max(row["l2r"], row["r2l"]) for row in result["forward"]) < 1e-5
    assert max(row["max_relative"] for row in result["gradients"]) < 1e-3
    assert result["training_losses"]["official_fp32"] == pytest.approx(result["training_losses"]["ours_fp32"], rel=1e-4)
