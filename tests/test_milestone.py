"""Milestones: a checkpoint packed to fp16/bf16 and unpacked keeps the run resumable where it stopped."""
from __future__ import annotations

import pytest
import torch

from abm_lib import milestone
from abm_lib.checkpoint import CheckpointError, read_checkpoint
from abm_lib.training import Trainer

from test_training import tiny_experiment


@pytest.fixture(scope="module")
def stopped_run(sample_data, tmp_path_factory):
    """A tiny run stopped inside its second epoch (48 expressions in batches of 8: 6+ steps an epoch)."""
    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_experiment(sample_data, max_steps=9), run, progress=False).fit()
    return run


def test_pack_halves_the_weights_and_keeps_everything_else(stopped_run):
    checkpoint = read_checkpoint(stopped_run / "last.pt")
    packed = milestone.pack(checkpoint)
    assert packed["format"] == milestone.MILESTONE_FORMAT
    for key, value in packed["model"].items():
        original = checkpoint["model"][key]
        if original.is_floating_point():
            assert value.dtype == torch.float16
            torch.testing.assert_close(value.float(), original, rtol=1e-3, atol=1e-4)
        else:
            assert torch.equal(value, original)  # BatchNorm batch counters stay integers
    states = packed["optimizer"]["state"].values()
    assert {state["acc_delta"].dtype for state in states} == {torch.bfloat16}
    assert {state["step"].dtype for state in states} == {torch.float32}  # counters are not rounded
    for key in ("epoch", "step_in_epoch", "global_step", "history", "schedule", "config", "data_fingerprint"):
        assert packed[key] == checkpoint[key]
    assert torch.equal(packed["rng"]["torch"], checkpoint["rng"]["torch"])


def test_unpacked_milestone_resumes_at_the_same_step(stopped_run, sample_data, tmp_path):
    milestone.pack_file(stopped_run / "last.pt", tmp_path / "milestone.pt")
    tensor_bytes = lambda state: sum(t.nbytes for t in state["model"].values()) + sum(  # noqa: E731
        t.nbytes for s in state["optimizer"]["state"].values() for t in s.values())
    packed = read_checkpoint(tmp_path / "milestone.pt")
    assert tensor_bytes(packed) < 0.51 * tensor_bytes(read_checkpoint(stopped_run / "last.pt"))
    run = tmp_path / "run"
    restored = milestone.unpack_to_run(tmp_path / "milestone.pt", run)
    assert restored["model"]["encoder.stem.weight"].dtype == torch.float32
    assert (run / "metrics.jsonl").read_text() == (stopped_run / "metrics.jsonl").read_text()
    assert not (run / "best.pt").exists()  # stopped mid-epoch: best.pt's weights are not in the file
    trainer = Trainer(tiny_experiment(sample_data, max_steps=12), run, resume=True, progress=False)
    original = read_checkpoint(stopped_run / "last.pt")
    assert (trainer.epoch, trainer.step_in_epoch, trainer.global_step) == \
        (original["epoch"], original["step_in_epoch"], original["global_step"])
    trainer.fit()
    assert read_checkpoint(run / "last.pt")["global_step"] == 12


def test_milestone_at_a_best_epoch_end_brings_back_best_pt(sample_data, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_experiment(sample_data, max_epochs=1), run, progress=False).fit()
    milestone.pack_file(run / "best.pt", tmp_path / "milestone.pt")
    milestone.unpack_to_run(tmp_path / "milestone.pt", tmp_path / "again")
    assert (tmp_path / "again" / "best.pt").exists()


def test_refusals_name_the_file_and_the_problem(stopped_run, tmp_path):
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        milestone.pack({"format": "something else"}, "x.pt")
    with pytest.raises(CheckpointError, match="not a milestone"):
        milestone.unpack(read_checkpoint(stopped_run / "last.pt"), "last.pt")
    milestone.pack_file(stopped_run / "last.pt", tmp_path / "milestone.pt")
    with pytest.raises(FileExistsError, match="last.pt exists"):
        milestone.unpack_to_run(tmp_path / "milestone.pt", stopped_run)
    assert milestone.main(["unpack", str(tmp_path / "missing.pt"), str(tmp_path / "new")]) == 1


def test_load_pretrained_reads_a_milestone_as_its_fp16_weights(stopped_run, tmp_path):
    from abm_lib import load_pretrained

    packed = milestone.pack_file(stopped_run / "last.pt", tmp_path / "milestone.pt")
    model = load_pretrained(tmp_path / "milestone.pt")
    assert model.provenance["source_format"] == milestone.MILESTONE_FORMAT
    assert model.provenance["global_step"] == packed["global_step"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, packed["model"][key].to(value.dtype))
