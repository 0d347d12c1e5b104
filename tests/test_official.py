"""Official XH-B/ABM state dicts: exact round trips, strict loading, one decoder step against the official equations."""
from __future__ import annotations

import ast
import dataclasses
import math
import re

import pytest
import torch
import torch.nn.functional as F

from abm_lib.checkpoint import CheckpointError, load_state_strict
from abm_lib.decoder import DecoderState
from abm_lib.model import ABM
from abm_lib.official import (from_official_state_dict, load_official_checkpoint, model_from_official_state_dict,
                              official_config, save_official_checkpoint, to_official_state_dict)

from conftest import SHARED, tiny_config

KEY_LIST = SHARED / "docs" / "official_state_dict.tsv"
R2L_KEY = re.compile(r"(init_GRU_model2|emb_model2|gru_model2|gru_prob_model2)\.")


def official_shapes() -> dict[str, tuple[int, ...]]:
    """Keys and shapes of the official state dict: the shared key list, else our model converted."""
    if not KEY_LIST.is_file():
        return {k: tuple(v.shape) for k, v in to_official_state_dict(ABM().state_dict()).items()}
    shapes = {}
    for line in KEY_LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split("\t")
            shapes[key] = tuple(ast.literal_eval(shape))
    return shapes


def random_official_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes, scaled like trained weights (so no tanh saturates)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.randint(0, 1000, shape, generator=generator)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 and "embedding" not in key else 100
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
    return state


@pytest.fixture(scope="module")
def official_state() -> dict[str, torch.Tensor]:
    return random_official_state(official_shapes())


def test_round_trip_through_our_model_is_exact(official_state):
    model = ABM()
    load_state_strict(model, from_official_state_dict(official_state))
    back = to_official_state_dict(model.state_dict())
    assert set(back) == set(official_state)
    for key, tensor in official_state.items():
        assert back[key].dtype == tensor.dtype and torch.equal(back[key], tensor), key


def test_converted_keys_are_the_official_key_list():
    if not KEY_LIST.is_file():
        pytest.skip(f"{KEY_LIST} not found (the shared docs are absent in this checkout)")
    ours = {k: tuple(v.shape) for k, v in to_official_state_dict(ABM().state_dict()).items()}
    assert ours == official_shapes()


def test_l2r_only_official_checkpoint(official_state):
    l2r_only = {k: v for k, v in official_state.items() if not R2L_KEY.match(k)}
    assert official_config(l2r_only).directions == ("l2r",)
    model = model_from_official_state_dict(l2r_only)
    assert list(model.decoders) == ["l2r"] and not model.training
    back = to_official_state_dict(model.state_dict())
    assert set(back) == set(l2r_only) and all(torch.equal(back[k], v) for k, v in l2r_only.items())


def _randomize_batch_norm_statistics(model: ABM) -> None:
    generator = torch.Generator().manual_seed(1)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
        elif name.endswith("running_var"):
            buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)


def test_outputs_unchanged_after_ours_official_ours(tmp_path):
    torch.manual_seed(0)
    model = ABM(tiny_config()).eval()
    _randomize_batch_norm_statistics(model)
    save_official_checkpoint(model, tmp_path / "official.pkl")
    loaded = load_official_checkpoint(tmp_path / "official.pkl")
    assert loaded.config == model.config and not loaded.training
    images, mask = torch.rand(2, 1, 32, 48), torch.ones(2, 32, 48)
    mask[1, :, 32:] = 0
    inputs = {"l2r": torch.tensor([[0, 5, 7], [0, 9, 1]]), "r2l": torch.tensor([[1, 7, 5], [1, 9, 0]])}
    with torch.no_grad():
        expected, actual = model(images, mask, inputs), loaded(images, mask, inputs)
    for direction in inputs:
        assert torch.equal(expected[direction][0], actual[direction][0])
        assert torch.equal(expected[direction][1], actual[direction][1])


def test_data_parallel_prefix_is_removed(tmp_path):
    model = ABM(tiny_config(directions=("l2r",)))
    official = to_official_state_dict(model.state_dict())
    torch.save({f"module.{k}": v for k, v in official.items()}, tmp_path / "dp.pth")
    loaded = load_official_checkpoint(tmp_path / "dp.pth")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_missing_and_misshapen_keys_are_listed(tmp_path, official_state):
    broken = dict(official_state)
    del broken["gru_model.fc_Uhz.weight"]
    broken["gru_prob_model.fc_Wct.bias"] = torch.zeros(255)
    broken["gru_model.fc_extra.weight"] = torch.zeros(3)
    torch.save(broken, tmp_path / "broken.pkl")
    with pytest.raises(CheckpointError) as error:
        load_official_checkpoint(tmp_path / "broken.pkl")
    message = str(error.value)
    assert "broken.pkl" in message and "3 problems" in message
    assert "missing: gru_model.fc_Uhz.weight (256, 256)" in message
    assert "shape: gru_prob_model.fc_Wct.bias is (255,) in the file, (256,) expected" in message
    assert "unexpected: gru_model.fc_extra.weight" in message


def test_conversion_errors_name_the_keys():
    with pytest.raises(CheckpointError, match="fc_unknown"):
        from_official_state_dict({"gru_model.fc_unknown.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="gate layers"):
        from_official_state_dict({"gru_model.fc_Wyz.weight": torch.zeros(1)})
    tiny = tiny_config()
    decoder = dataclasses.replace(tiny.decoder, coverage_kernels=(11, 5, 3))
    three_scales = ABM(dataclasses.replace(tiny, decoder=decoder))
    with pytest.raises(CheckpointError, match="coverage_convs.2"):
        to_official_state_dict(three_scales.state_dict())


# ---------------------------------------------------------------- parity with the official equations
def official_decoder_step(w: dict, prefix: str, y, h, features, feature_mask, coverage):
    """One step of the official decoder written from its equations, with the official weights.

    prefix is "" for L2R and "2" for R2L; returns logits, h2, alpha and the new coverage.
    """
    def linear(x, name):
        return F.linear(x, w[f"{name}.weight"], w.get(f"{name}.bias"))

    gru, prob = f"gru_model{prefix}", f"gru_prob_model{prefix}"
    emb = w[f"emb_model{prefix}.embedding.weight"][y]
    z1 = torch.sigmoid(linear(h, f"{gru}.fc_Uhz") + linear(emb, f"{gru}.fc_Wyz"))
    r1 = torch.sigmoid(linear(h, f"{gru}.fc_Uhr") + linear(emb, f"{gru}.fc_Wyr"))
    h1_candidate = torch.tanh(linear(h, f"{gru}.fc_Uhh") * r1 + linear(emb, f"{gru}.fc_Wyh"))
    h1 = z1 * h + (1 - z1) * h1_candidate

    projected = F.conv2d(features, w[f"{gru}.conv_Ua.weight"], w[f"{gru}.conv_Ua.bias"]).permute(0, 2, 3, 1)
    cover11 = F.conv2d(coverage[:, None], w[f"{gru}.conv_Q.weight"], padding=5).permute(0, 2, 3, 1)
    cover5 = F.conv2d(coverage[:, None], w[f"{gru}.conv_Q2.weight"], padding=2).permute(0, 2, 3, 1)
    query = linear(h1, f"{gru}.fc_Wa")[:, None, None, :]
    scores = torch.tanh(projected + query + linear(cover11, f"{gru}.fc_Uf") + linear(cover5, f"{gru}.fc_Uf2"))
    alpha = torch.exp(linear(scores, f"{gru}.fc_va")[..., 0]) * feature_mask
    alpha = alpha / alpha.sum(dim=(1, 2), keepdim=True)
    context = (features * alpha[:, None]).sum(dim=(2, 3))

    z2 = torch.sigmoid(linear(context, f"{gru}.fc_Wcz") + linear(h1, f"{gru}.fc_Uhz2"))
    r2 = torch.sigmoid(linear(context, f"{gru}.fc_Wcr") + linear(h1, f"{gru}.fc_Uhr2"))
    h2_candidate = torch.tanh(linear(context, f"{gru}.fc_Wch") + linear(h1, f"{gru}.fc_Uhh2") * r2)
    h2 = z2 * h1 + (1 - z2) * h2_candidate

    readout = linear(context, f"{prob}.fc_Wct") + linear(h2, f"{prob}.fc_Wht") + linear(emb, f"{prob}.fc_Wyt")
    maxout = readout.view(readout.shape[0], -1, 2).max(dim=2).values
    return linear(maxout, f"{prob}.fc_W0"), h2, alpha, coverage + alpha


def official_initial_state(w: dict, prefix: str, features, feature_mask):
    """h0 = tanh(fc(mean of the features over the real cells))."""
    mean = (features * feature_mask[:, None]).sum(dim=(2, 3)) / feature_mask.sum(dim=(1, 2))[:, None]
    return torch.tanh(F.linear(mean, w[f"init_GRU_model{prefix}.fc.weight"], w[f"init_GRU_model{prefix}.fc.bias"]))


@pytest.mark.parametrize("direction,prefix", [("l2r", ""), ("r2l", "2")])
def test_one_decoder_step_equals_the_official_equations(official_state, direction, prefix):
    model = model_from_official_state_dict(official_state)
    decoder = model.decoders[direction]
    generator = torch.Generator().manual_seed(2)
    features = torch.randn(2, 684, 4, 6, generator=generator)
    feature_mask = torch.ones(2, 4, 6)
    feature_mask[1, 3:, :] = 0  # the second image is padded below and to the right
    feature_mask[1, :, 4:] = 0
    hidden = torch.tanh(torch.randn(2, 256, generator=generator))
    coverage = torch.rand(2, 4, 6, generator=generator) * feature_mask
    previous = torch.tensor([5, 77])

    with torch.no_grad():
        memory, initial = decoder.start(features, feature_mask)
        logits, state, alpha = decoder.step(memory, DecoderState(hidden, coverage), previous)
        expected_h0 = official_initial_state(official_state, prefix, features, feature_mask)
        expected = official_decoder_step(official_state, prefix, previous, hidden, features, feature_mask, coverage)

    torch.testing.assert_close(initial.hidden, expected_h0, atol=1e-5, rtol=0)
    for name, ours, theirs in zip(("logits", "hidden", "alpha", "coverage"),
                                  (logits, state.hidden, alpha, state.coverage), expected):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
    assert logits.abs().max() > 0.5 and alpha[1, 3:].abs().max() == 0  # not trivially small; padding ignored
