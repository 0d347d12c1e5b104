"""Warm start: a run whose folder is lost goes on from its exported weights and its metrics.jsonl."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from abm_lib import training
from abm_lib.checkpoint import CheckpointError, read_checkpoint
from abm_lib.pretrained import export_weights, load_pretrained
from abm_lib.training import Trainer

from test_training import tiny_experiment


@pytest.fixture(scope="module")
def exported(sample_data, tmp_path_factory):
    """A tiny run of 3 epochs, with epoch 1 exported as weights. It schedules on the ExpRate with
    patience 0: a tiny model reads nothing, so its learning rate halves after epoch 1."""
    run = tmp_path_factory.mktemp("lost_run")
    Trainer(warm_config(sample_data, max_epochs=3, keep_epoch_checkpoints=True), run, progress=False).fit()
    export_weights(run / training.epoch_checkpoint_name(1), run / "weights.pt")
    return run


def warm_config(sample_data, **train):
    config = tiny_experiment(sample_data, **train)
    config.optim.patience, config.optim.schedule_metric = 0, "valid_exprate"
    return config


def test_warm_start_resumes_the_epoch_count_history_schedule_and_weights(exported, sample_data, tmp_path):
    trainer = Trainer(warm_config(sample_data), tmp_path, progress=False,
                      warm_start=(exported / "weights.pt", exported / "metrics.jsonl"))
    at_epoch_1 = read_checkpoint(exported / training.epoch_checkpoint_name(1))
    assert (trainer.epoch, trainer.step_in_epoch, trainer.global_step) == (2, 0, at_epoch_1["global_step"])
    assert trainer.history == at_epoch_1["history"]  # epochs 0-1 only, though the file holds epoch 2 too
    assert dataclasses.asdict(trainer.schedule) == at_epoch_1["schedule"] and trainer.schedule.lr == 0.5
    assert trainer.optimizer.param_groups[0]["lr"] == at_epoch_1["schedule"]["lr"]
    assert trainer.optimizer.state_dict()["state"] == {}  # exported weights carry no running averages
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(value, at_epoch_1["model"][key].half().to(value.dtype)), key
    final = trainer.fit()
    assert final["epoch"] == 2
    saved = read_checkpoint(tmp_path / "last.pt")
    assert [row["epoch"] for row in saved["history"]] == [0, 1, 2]
    record = saved["warm_started_from"]
    assert "weights.pt (sha256" in record and "optimiser state restarted" in record
    assert "epoch 1" in load_pretrained(tmp_path / "last.pt").provenance["warm_started_from"]


def test_a_resumed_warm_started_run_keeps_its_provenance(exported, sample_data, tmp_path):
    start = read_checkpoint(exported / "weights.pt")["provenance"]["global_step"]
    Trainer(warm_config(sample_data, max_steps=start + 2), tmp_path, progress=False,
            warm_start=(exported / "weights.pt", exported / "metrics.jsonl")).fit()
    resumed = Trainer(warm_config(sample_data), tmp_path, resume=True, progress=False)
    assert resumed.step_in_epoch == 2 and "optimiser state restarted" in resumed.warm_started_from


def test_warm_start_refuses_other_models_histories_and_folders(exported, sample_data, tmp_path):
    weights, history = exported / "weights.pt", exported / "metrics.jsonl"
    other_model = warm_config(sample_data)
    other_model.model.directions = ("l2r",)
    with pytest.raises(CheckpointError, match="model.directions"):
        Trainer(other_model, tmp_path / "a", progress=False, warm_start=(weights, history))
    other_recipe = warm_config(sample_data)
    other_recipe.optim.patience = 1
    with pytest.raises(ValueError, match="another recipe"):
        Trainer(other_recipe, tmp_path / "b", progress=False, warm_start=(weights, history))
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    rows[1]["valid_exprate"] += 10
    (tmp_path / "other.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    with pytest.raises(ValueError, match="different runs"):
        Trainer(warm_config(sample_data), tmp_path / "c", progress=False,
                warm_start=(weights, tmp_path / "other.jsonl"))
    (tmp_path / "gap.jsonl").write_text(json.dumps(rows[1]) + "\n")
    with pytest.raises(ValueError, match="epochs 0-1"):
        Trainer(warm_config(sample_data), tmp_path / "d", progress=False, warm_start=(weights, tmp_path / "gap.jsonl"))
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        Trainer(warm_config(sample_data), tmp_path / "e", progress=False,
                warm_start=(weights, tmp_path / "missing.jsonl"))
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(warm_config(sample_data), exported, progress=False, warm_start=(weights, history))
    with pytest.raises(ValueError, match="only one"):
        Trainer(warm_config(sample_data), exported, resume=True, progress=False, warm_start=(weights, history))


def test_the_command_line_wants_weights_and_history_together(tmp_path, capsys):
    from abm_lib.train import parse_args
    with pytest.raises(SystemExit):
        parse_args(["--data", "d", "--run-dir", str(tmp_path), "--warm-start", "w.pt"])
    assert "go together" in capsys.readouterr().err
