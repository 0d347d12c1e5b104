"""The book's quick-mode helpers: data folder choice, the demonstration config and its cache key."""
from __future__ import annotations

from pathlib import Path

import torch

from abm_lib.demo import _finished, best_available_model, demo_config, demo_run_dir, prepared_data, shipped_description
from abm_lib.model import ABM
from abm_lib.pretrained import export_weights

from conftest import tiny_config


def test_a_given_data_root_is_used_as_is(tmp_path):
    assert prepared_data(tmp_path) == tmp_path


def test_the_demo_recipe_is_the_quick_config_on_a_few_expressions(tmp_path):
    config = demo_config(tmp_path, threads=1)
    assert config.data.data_dir == str(tmp_path) and config.data.train_limit == 16
    assert config.model.decoder.hidden_dim == 32  # the quick config's tiny model
    assert config.optim.lr == 1.0  # the official optimiser settings are kept
    assert config.model.encoder.dropout == 0.0


def test_the_cache_folder_follows_the_config_but_not_threads(tmp_path):
    one, two = demo_config(tmp_path, threads=1), demo_config(tmp_path, threads=2)
    assert demo_run_dir(one, tmp_path) == demo_run_dir(two, tmp_path)
    other = demo_config(tmp_path, extra=("train.max_epochs=3",))
    assert demo_run_dir(other, tmp_path) != demo_run_dir(one, tmp_path)


def test_an_unfinished_cached_run_is_not_reused(tmp_path):
    config = demo_config(tmp_path, extra=("train.max_epochs=2",))
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    (run / "metrics.jsonl").write_text('{"epoch": 0}\n')
    assert not _finished(run, config)
    (run / "metrics.jsonl").write_text('{"epoch": 0}\n{"epoch": 1}\n')
    assert _finished(run, config)


def test_given_weights_come_first(tmp_path):
    from abm_lib.checkpoint import atomic_save
    from abm_lib.config import ExperimentConfig, to_dict
    from abm_lib.vocab import default_vocabulary

    torch.manual_seed(0)
    model = ABM(tiny_config())
    config = to_dict(ExperimentConfig(model=model.config))
    atomic_save({"format": "abm-book/checkpoint/1", "model": model.state_dict(), "config": config,
                 "vocab": list(default_vocabulary().tokens)}, tmp_path / "best.pt")
    export_weights(tmp_path / "best.pt", tmp_path / "weights.pt")
    available = best_available_model(tmp_path / "weights.pt")
    assert available.kind == "weights" and not available.is_demo
    assert available.path == Path(tmp_path / "weights.pt")
    assert not available.model.training


def test_the_example_for_a_demo_model_is_one_of_its_training_expressions(sample_data):
    from abm_lib.demo import AvailableModel, example_sample
    from abm_lib.vocab import default_vocabulary
    from data_prep.splits import load_split

    torch.manual_seed(0)
    model = ABM(tiny_config()).eval()
    model.vocab = default_vocabulary()
    ids = [s.expression_id for s in load_split(sample_data / "train").samples[:4]]
    available = AvailableModel(model, "demo", sample_data / "last.pt", "untrained", ids)
    sample = example_sample(available, sample_data)
    assert sample.expression_id in ids  # an untrained model reads none: the shortest of them
    shortest = min(len(s.labels["v1"]) for s in load_split(sample_data / "train").samples[:4])
    assert len(sample.labels["v1"]) == shortest


def test_the_shipped_weights_say_how_far_they_were_trained():
    provenance = {"epoch": 2, "valid_exprate": 12.5, "valid_decoding": "greedy"}
    assert shipped_description(provenance).endswith(
        ": the reference run after 3 epoch(s), validation ExpRate 12.50% (greedy, CROHME 2013)")
    assert shipped_description({}) == "the shipped weights (abm_lib/weights/abm_paper.pt)"
