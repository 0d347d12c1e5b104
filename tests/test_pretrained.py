"""Exported weights: small fp16 files that load into a ready model; every source format; one-line errors."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from abm_lib import export, pretrained
from abm_lib.checkpoint import CheckpointError, file_sha256
from abm_lib.config import ExperimentConfig, to_dict
from abm_lib.decoding import DecodingOptions, greedy_search
from abm_lib.model import ABM
from abm_lib.official import save_official_checkpoint
from abm_lib.preprocessing import PreprocessSettings
from abm_lib.pretrained import export_weights, load_pretrained
from abm_lib.training import CHECKPOINT_FORMAT
from abm_lib.vocab import default_vocabulary

from conftest import tiny_config


@pytest.fixture(scope="module")
def source_model() -> ABM:
    torch.manual_seed(0)
    return ABM(tiny_config()).eval()


@pytest.fixture
def training_checkpoint(tmp_path, source_model):
    """A checkpoint shaped like the ones abm_lib.training writes."""
    path = tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    torch.save({
        "format": CHECKPOINT_FORMAT, "model": source_model.state_dict(),
        "optimizer": {"state": {}, "param_groups": []}, "epoch": 4, "global_step": 40, "best_exprate": 0.25,
        "history": [{"epoch": 3, "valid_exprate": 0.25, "valid_decoding": "greedy"}],
        "config": to_dict(ExperimentConfig(model=tiny_config())), "vocab": list(default_vocabulary().tokens),
        "data_fingerprint": "abc",
    }, path)
    return path


def _batch():
    generator = torch.Generator().manual_seed(3)
    images, mask = torch.rand(2, 1, 32, 64, generator=generator), torch.ones(2, 32, 64)
    mask[1, :, 48:] = 0
    return images, mask


def test_training_format_is_the_trainers():
    assert pretrained.TRAINING_FORMAT == CHECKPOINT_FORMAT


def test_export_then_load_gives_a_ready_model(tmp_path, source_model, training_checkpoint):
    out = tmp_path / "weights.pt"
    provenance = export_weights(training_checkpoint, out)
    fp32_weights = tmp_path / "fp32.pt"
    torch.save(source_model.state_dict(), fp32_weights)
    stored = torch.load(out, weights_only=True)  # plain contents: loadable without unpickling code
    assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {torch.float16}
    assert out.stat().st_size < fp32_weights.stat().st_size  # half the bytes, plus a fixed overhead per tensor

    model = load_pretrained(out)
    assert not model.training and model.config == source_model.config
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in model.parameters())
    assert model.vocab == default_vocabulary() and model.preprocessing == PreprocessSettings()
    assert provenance == model.provenance
    assert provenance["source_sha256"] == file_sha256(training_checkpoint)
    assert (provenance["epoch"], provenance["valid_exprate"], provenance["global_step"]) == (3, 0.25, 40)
    assert provenance["exported"][:4].isdigit()

    images, mask = _batch()
    inputs = {"l2r": torch.tensor([[0, 5, 7, 9], [0, 9, 3, 1]])}
    with torch.no_grad():
        expected, actual = source_model(images, mask, inputs)["l2r"][0], model(images, mask, inputs)["l2r"][0]
    torch.testing.assert_close(actual, expected, atol=2e-2, rtol=2e-2)  # fp16 weights
    options = DecodingOptions(beam_width=1, max_length=8, return_attention=False)
    assert ([h.token_ids for h in greedy_search(model, images, mask, options)]
            == [h.token_ids for h in greedy_search(source_model, images, mask, options)])


def test_training_and_official_checkpoints_load_directly(tmp_path, source_model, training_checkpoint):
    from_training = load_pretrained(training_checkpoint)
    assert all(torch.equal(v, from_training.state_dict()[k]) for k, v in source_model.state_dict().items())
    assert from_training.provenance["best_valid_exprate"] == 0.25
    save_official_checkpoint(source_model, tmp_path / "official.pkl")
    from_official = load_pretrained(tmp_path / "official.pkl")
    assert all(torch.equal(v, from_official.state_dict()[k]) for k, v in source_model.state_dict().items())
    assert from_official.provenance["source_format"].startswith("official")
    assert not from_official.training


def test_default_and_named_weights(tmp_path, monkeypatch, training_checkpoint):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "weights")
    with pytest.raises(CheckpointError, match="no shipped weights yet.*python -m abm_lib.export"):
        load_pretrained()
    assert export.main([str(training_checkpoint), str(tmp_path / "weights" / "abm_paper.pt")]) == 0
    assert load_pretrained().provenance["epoch"] == 3
    assert load_pretrained("abm_paper").provenance["epoch"] == 3
    with pytest.raises(CheckpointError, match="shipped: \\['abm_paper'\\]"):
        load_pretrained("abm_other")


def _one_line_error(path) -> str:
    with pytest.raises(CheckpointError) as error:
        load_pretrained(path)
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    return message


def test_export_command_reports_errors(tmp_path, caplog):
    assert export.main([str(tmp_path / "missing.pt"), str(tmp_path / "out.pt")]) == 1
    assert "missing.pt: no such checkpoint" in caplog.text
    assert not (tmp_path / "out.pt").exists()


def test_unusable_files_give_one_line_errors(tmp_path):
    assert "no such checkpoint" in _one_line_error(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"\x80\x02 this is not a checkpoint")
    assert "not a readable checkpoint" in _one_line_error(tmp_path / "corrupt.pt")
    torch.save(nn.Linear(3, 4).state_dict(), tmp_path / "linear.pt")
    assert "not an ABM checkpoint" in _one_line_error(tmp_path / "linear.pt")
    torch.save({"format": pretrained.WEIGHTS_FORMAT, "model": {}}, tmp_path / "truncated.pt")
    assert "incomplete" in _one_line_error(tmp_path / "truncated.pt")


def test_weights_of_another_architecture_are_refused(tmp_path, training_checkpoint):
    out = tmp_path / "weights.pt"
    export_weights(training_checkpoint, out)
    contents = torch.load(out)
    contents["config"]["decoder"]["hidden_dim"] = 32
    torch.save(contents, out)
    with pytest.raises(CheckpointError, match="does not fit this model's architecture"):
        load_pretrained(out)
