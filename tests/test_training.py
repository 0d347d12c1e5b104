"""The trainer: exact resume, refusals, atomic checkpoints, bad losses, signals, DDP, quick config."""
from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from abm_lib import training
from abm_lib.checkpoint import CheckpointError, atomic_save, read_checkpoint
from abm_lib.config import ExperimentConfig, load_config
from abm_lib.data import collate
from abm_lib.loss import bidirectional_loss
from abm_lib.training import Trainer

from conftest import tiny_config


def tiny_experiment(data_dir: Path, dropout: float = 0.2, **train) -> ExperimentConfig:
    """A tiny model on 48 sample expressions in batches of up to 8, fp32 for bitwise repeatability."""
    config = ExperimentConfig(model=tiny_config())
    config.model.encoder.dropout = config.model.decoder.dropout = dropout
    config.data.data_dir = str(data_dir)
    config.data.max_images, config.data.train_limit, config.data.valid_limit = 8, 48, 8
    config.train.precision, config.train.max_epochs = "fp32", 3
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run_dir / "last.pt")["model"]


def test_stop_and_resume_gives_the_same_weights_as_training_straight(sample_data, tmp_path):
    straight = Trainer(tiny_experiment(sample_data, max_steps=10), tmp_path / "a", progress=False)
    straight.fit()
    assert straight.epoch == 1 and straight.step_in_epoch > 0  # crossed an epoch end and its validation
    Trainer(tiny_experiment(sample_data, max_steps=5), tmp_path / "b", progress=False).fit()
    resumed = Trainer(tiny_experiment(sample_data, max_steps=10), tmp_path / "b", resume=True, progress=False)
    assert resumed.global_step == 5
    resumed.fit()
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    clock = {"time", "train_seconds", "train_images_per_s", "valid_seconds"}
    history = lambda run: [{k: v for k, v in row.items() if k not in clock}  # noqa: E731
                           for row in read_checkpoint(tmp_path / run / "last.pt")["history"]]
    assert history("a") == history("b")


def test_resume_refuses_a_changed_config_unless_allowed(sample_data, tmp_path):
    Trainer(tiny_experiment(sample_data, max_steps=1), tmp_path, progress=False).fit()
    changed = tiny_experiment(sample_data, max_steps=2)
    changed.loss.kl_weight = 1.0
    with pytest.raises(CheckpointError, match="loss.kl_weight"):
        Trainer(changed, tmp_path, resume=True, progress=False)
    assert Trainer(changed, tmp_path, resume=True, allow_changes=True, progress=False).global_step == 1
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(changed, tmp_path, progress=False)


def test_atomic_save_leaves_the_old_checkpoint_whole_after_a_crash(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)

    def crash(obj, file):
        file.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert read_checkpoint(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_atomic_save_gives_the_file_the_mode_of_a_normal_one(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_save({"step": 1}, tmp_path / "last.pt")
    finally:
        os.umask(previous)
    assert (tmp_path / "last.pt").stat().st_mode & 0o777 == 0o644


def test_corrupt_or_missing_checkpoint_gives_a_one_line_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "none.pt")


def test_non_finite_losses_are_skipped_then_stop_the_run(sample_data, tmp_path, monkeypatch, caplog):
    calls = {"n": 0}

    def sometimes_nan(*args, **kwargs):
        calls["n"] += 1
        terms = bidirectional_loss(*args, **kwargs)
        if calls["n"] >= 2:
            terms.total = terms.total * float("nan")
        return terms

    monkeypatch.setattr(training, "bidirectional_loss", sometimes_nan)
    trainer = Trainer(tiny_experiment(sample_data, max_bad_steps=3), tmp_path, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="3 non-finite losses"):
        trainer.fit()
    assert "step skipped" in caplog.text
    changed = [k for k, v in trainer.model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the first (finite) step was applied, the NaN ones were not
    assert all(torch.isfinite(v.float()).all() for v in trainer.model.state_dict().values())


def test_sigterm_saves_a_checkpoint_and_stops(sample_data, tmp_path, monkeypatch):
    original = Trainer._train_step

    def step_then_signal(self, examples):
        terms = original(self, examples)
        if self.global_step == 1:  # counted after this call returns: the 2nd step finishes first
            os.kill(os.getpid(), signal.SIGTERM)
        return terms

    monkeypatch.setattr(Trainer, "_train_step", step_then_signal)
    trainer = Trainer(tiny_experiment(sample_data), tmp_path, progress=False)
    trainer.fit()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    state = read_checkpoint(tmp_path / "last.pt")
    assert (state["epoch"], state["step_in_epoch"]) == (0, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, config: ExperimentConfig, run_dir: Path, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    Trainer(config, run_dir, progress=False).fit()
    torch.distributed.destroy_process_group()


def test_two_gloo_processes_match_one_process_averaging_their_batches(sample_data, tmp_path):
    """DDP on 2 CPU processes: each steps on its own batch; one process on both batches, gradients averaged."""
    config = tiny_experiment(sample_data, dropout=0.0, max_steps=3)
    mp.spawn(_ddp_worker, args=(config, tmp_path / "ddp", _free_port()), nprocs=2, join=True)

    reference = Trainer(config, tmp_path / "single", progress=False)
    order = reference._epoch_order(0)
    model, optimizer = reference.model, reference.optimizer
    for step in range(3):
        optimizer.zero_grad()
        for batch_index in order[2 * step : 2 * step + 2]:  # rank 0 takes even, rank 1 odd positions
            batch = collate([reference.train_examples[i] for i in reference.train_batches[batch_index]], reference.vocab)
            outputs = model(batch.images, batch.image_mask, batch.inputs)
            terms = bidirectional_loss({d: o[0] for d, o in outputs.items()}, batch.targets, batch.target_mask,
                                       batch.lengths, config.loss)
            (terms.total / 2).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.clip_norm)
        optimizer.step()
    distributed = weights(tmp_path / "ddp")
    # Parameters only: DDP broadcasts rank 0's BatchNorm running statistics at every forward,
    # while one process updates them with both halves in turn (they do not enter training).
    for key, value in model.named_parameters():
        torch.testing.assert_close(distributed[key], value.detach(), atol=2e-5, rtol=1e-4, msg=key)


def test_quick_config_trains_end_to_end_on_the_sample(sample_data, tmp_path):
    config = load_config("quick", [f"data.data_dir={sample_data}", "train.max_epochs=1"])
    final = Trainer(config, tmp_path, progress=False).fit()
    assert final["epoch"] == 0 and final["train_loss"] > 0 and 0 <= final["valid_exprate"] <= 100
    assert final["valid_wer"] > 0  # an untrained model misreads; WER counts every edit
    assert 0 <= final["valid_attention_focus"] <= 1
    assert final["train_machine"].endswith(f", {os.cpu_count()} CPUs")  # what the speed was measured on
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "metrics.jsonl").read_text().count("\n") == 1


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m data_prep build"):
        Trainer(tiny_experiment(tmp_path / "nowhere"), tmp_path / "run", progress=False)


def test_kept_epoch_checkpoints_hold_each_epochs_weights(sample_data, tmp_path):
    Trainer(tiny_experiment(sample_data, max_epochs=2, keep_epoch_checkpoints=True), tmp_path, progress=False).fit()
    first, second = (read_checkpoint(tmp_path / training.epoch_checkpoint_name(e)) for e in (0, 1))
    assert [row["epoch"] for row in first["history"]] == [0] and second["epoch"] == 2
    last = weights(tmp_path)
    assert all(torch.equal(second["model"][k], last[k]) for k in last)
    assert not all(torch.equal(first["model"][k], last[k]) for k in last)


def test_beam_validation_is_logged_beside_the_greedy_figure_not_in_its_place(sample_data, tmp_path):
    """Selection compares epochs on one decoding: a beam epoch keeps its greedy ExpRate as valid_exprate."""
    trainer = Trainer(tiny_experiment(sample_data, valid_beam_every=2), tmp_path, progress=False)
    trainer.epoch = 0
    greedy_only = trainer._validate()
    trainer.epoch = 1
    with_beam = trainer._validate()
    assert "valid_exprate_beam10" not in greedy_only
    assert with_beam["valid_decoding"] == greedy_only["valid_decoding"] == "greedy"
    for key in ("valid_loss", "valid_exprate", "valid_wer"):
        assert with_beam[key] == greedy_only[key], key
    assert 0 <= with_beam["valid_exprate_beam10"] <= 100 and with_beam["valid_wer_beam10"] >= 0


def test_best_epoch_is_the_highest_validation_exprate_then_the_lowest_loss_within_the_budget():
    history = [{"epoch": 0, "valid_exprate": 0.0, "valid_loss": 2.7}, {"epoch": 1, "valid_exprate": 0.0, "valid_loss": 2.5},
               {"epoch": 2, "valid_exprate": 5.0, "valid_loss": 2.4}, {"epoch": 3, "valid_exprate": 5.0, "valid_loss": 2.4},
               {"epoch": 4, "valid_exprate": 5.0, "valid_loss": 2.3}, {"epoch": 5, "valid_exprate": 9.0, "valid_loss": 2.6}]
    assert training.best_epoch(history, budget=2) == 1  # all at 0%: the lower loss, not the first epoch
    assert training.best_epoch(history, budget=4) == 2  # equal ExpRate and loss: the earlier epoch
    assert training.best_epoch(history, budget=5) == 4
    assert training.best_epoch(history, budget=6) == 5  # ExpRate first, whatever the loss
    with pytest.raises(ValueError, match="budget of 0"):
        training.best_epoch(history, budget=0)
