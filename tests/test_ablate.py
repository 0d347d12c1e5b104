"""The ablation runner: variants trained in turn at one budget, each row evaluated at that budget."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from abm_lib import ablate
from abm_lib.checkpoint import read_checkpoint
from abm_lib.evaluation import read_report

from conftest import REPO

SMALL = ["--config", "quick", "--set", "data.train_limit=16", "--set", "data.valid_limit=8", "--threads", "1"]


def run(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "abm_lib.ablate", *arguments], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def test_train_then_evaluate_every_row_at_the_budget(sample_data, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "results"
    common = ["--data", str(sample_data), "--runs", str(runs), "--variant", "dwap", "--variant", "abm"]
    # The reference run stands for the full model: two epochs, of which the budget takes the first.
    trained = run("train", *common, *SMALL, "--epochs", "2", "--variant", "abm_official_kl")
    assert trained.returncode == 0, trained.stderr[-2000:]
    (runs / "abm_official_kl").rename(tmp_path / "reference")  # a run with the full model's overrides
    assert not (runs / "abm").exists()  # the full model is never trained by the runner
    evaluated = run("evaluate", *common, "--epochs", "1", "--reference", str(tmp_path / "reference"),
                    "--out", str(out), "--split", "valid", "--threads", "1")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    for variant, overrides in (("dwap", ["model.directions=[l2r]", "model.decoder.coverage_kernels=[11]"]),
                               ("abm", [])):
        selection = json.loads((out / variant / "selection.json").read_text())
        assert selection["budget_epochs"] == 1 and selection["selected_epoch"] == 0
        assert selection["overrides"] == overrides
        assert (out / variant / "metrics.jsonl").read_text().count("\n") == 1
        report = read_report(out / variant / "eval" / "valid.json")
        assert report["provenance"]["validation"]["epoch"] == 0 and report["decoding"]["beam_width"] == 10
    assert read_checkpoint(runs / "dwap" / "epoch001.pt")["config"]["model"]["directions"] == ["l2r"]


def test_evaluate_skips_a_run_short_of_the_budget(tmp_path, caplog):
    run_dir = tmp_path / "dwap"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "valid_exprate": 1.0, "valid_loss": 2.0}) + "\n")
    assert ablate.selected_checkpoint(run_dir, epochs=2) is None
    assert "1 of 2 epochs trained" in caplog.text
    with pytest.raises(FileNotFoundError, match="keep_epoch_checkpoints"):
        ablate.selected_checkpoint(run_dir, epochs=1)


def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="unknown variant"):
        ablate.chosen(["dwap", "nope"])


def test_a_signal_stops_the_running_command_and_the_rest_of_the_queue(tmp_path):
    marker = tmp_path / "second_ran"
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    code = ablate.run_in_turn([[sys.executable, "-c", "import time; time.sleep(60)"],
                               [sys.executable, "-c", f"open({str(marker)!r}, 'w')"]])
    assert code != 0 and time.monotonic() - started < 30 and not marker.exists()
