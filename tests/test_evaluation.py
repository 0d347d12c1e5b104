"""Evaluation on a tiny prepared split: every expression counted, metrics recomputable, provenance, CLI."""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import subprocess

import numpy as np
import pytest
import torch

from abm_lib import evaluation
from abm_lib.config import ExperimentConfig, to_dict
from abm_lib.decoding import EOS_ID, DecodingOptions
from abm_lib.evaluate import main
from abm_lib.evaluation import evaluate, provenance, read_report, results_table, write_report
from abm_lib.metrics import score_expressions
from abm_lib.model import ABM
from abm_lib.runtime import Runtime
from abm_lib.vocab import default_vocabulary
from conftest import tiny_config
from data_prep.splits import Sample, write_split

SIZES = [(32, 64), (40, 100), (48, 96), (64, 200), (96, 300)]  # areas 2048 .. 28800 pixels
V1 = ["x ^ { 2 }", "a + b", "1", "\\frac { 1 } { 2 }", "y = x"]
V2 = ["x ^ { 2 }", "a + b", "1", "\\Pi r ^ { 2 }", None]  # \Pi is not in the vocabulary; no v2 for the last
OPTIONS = DecodingOptions(beam_width=3, max_length=6)
FP32 = Runtime(torch.device("cpu"), "fp32")


def make_split(root, v1=V1, name="tiny"):
    """A prepared split of random-ish ink images with v1 labels and v2 labels for most of them."""
    rng = np.random.default_rng(0)
    samples = []
    for index, ((height, width), first, second) in enumerate(zip(SIZES, v1, V2)):
        image = np.where(rng.random((height, width)) > 0.9, 255, 0).astype(np.uint8)
        labels = {"v1": first.split()} | ({"v2": second.split()} if second else {})
        samples.append(Sample(f"expr_{index}", image, labels))
    return write_split(root, name, samples)


def tiny_model(eos_bias: float = 0.0) -> ABM:
    """A random tiny ABM; a large end-token bias makes it answer nothing."""
    torch.manual_seed(0)
    model = ABM(tiny_config()).eval()
    with torch.no_grad():
        model.decoders["l2r"].classifier.bias[EOS_ID] = eos_bias
    return model


def save_checkpoint(path, model: ABM, config=None):
    """A checkpoint shaped like the trainer's (the fields evaluation reads)."""
    torch.save({"format": "abm-book/checkpoint/1", "model": model.state_dict(),
                "config": to_dict(ExperimentConfig(model=config or model.config)),
                "vocab": list(default_vocabulary().tokens), "epoch": 3, "global_step": 30, "best_exprate": 12.5,
                "history": [{"epoch": 2, "valid_loss": 2.5, "valid_exprate": 12.5, "train_loss": 3.0}]}, path)
    return path


@pytest.fixture
def split_dir(tmp_path):
    return make_split(tmp_path / "data")


@pytest.fixture
def checkpoint(tmp_path):
    (tmp_path / "run").mkdir()
    return save_checkpoint(tmp_path / "run" / "best.pt", tiny_model())


def test_report_holds_every_expression_and_recomputable_metrics(split_dir):
    report = evaluate(tiny_model(), split_dir, OPTIONS, runtime=FP32)
    assert report["split"] == "tiny" and report["count"] == len(SIZES)
    assert [p["id"] for p in report["predictions"]] == [f"expr_{i}" for i in range(len(SIZES))]
    for record, first, second in zip(report["predictions"], V1, V2):
        assert isinstance(record["prediction"], str)
        assert record["references"] == {"v1": first} | ({"v2": second} if second else {})
        assert set(record["distances"]) == set(record["references"])
    assert report["metrics"]["v1"]["count"] == 5 and report["metrics"]["v2"]["count"] == 4
    for label_set, figures in report["metrics"].items():
        records = [p for p in report["predictions"] if label_set in p["references"]]
        again = score_expressions({p["id"]: p["prediction"].split() for p in records},
                                  {p["id"]: p["references"][label_set].split() for p in records})
        assert figures == {key: value for key, value in again.summary().items() if key != "missing"}
        assert [p["distances"][label_set] for p in records] == list(again.distances.values())
    assert report["decoding"]["beam_width"] == 3 and report["decoding"]["max_length"] == 6
    assert report["device"] == "cpu" and report["precision"] == "fp32"
    assert report["images_per_second"] > 0 and report["seconds"] > 0
    json.dumps(report)  # plain data only


def test_exact_predictions_count_and_out_of_vocabulary_references_are_errors(tmp_path, split_dir):
    model = tiny_model(eos_bias=1.2)  # this random model answers some images and leaves others empty
    first = evaluate(model, split_dir, OPTIONS, runtime=FP32)
    answers = [p["prediction"] for p in first["predictions"]]
    assert any(answers) and not all(answers)
    # Same images; v1 labels replaced by the model's own answers wherever it gave one.
    matching = make_split(tmp_path / "again", v1=[answer or label for answer, label in zip(answers, V1)])
    second = evaluate(model, matching, OPTIONS, runtime=FP32)
    assert [p["prediction"] for p in second["predictions"]] == answers
    assert [p["distances"]["v1"] == 0 for p in second["predictions"]] == [bool(a) for a in answers]
    assert second["metrics"]["v1"]["exp_rate"] == 100.0 * sum(map(bool, answers)) / len(answers)
    assert second["predictions"][3]["distances"]["v2"] > 0  # the \Pi reference can never be matched


def test_empty_decodings_are_counted_as_errors(split_dir):
    report = evaluate(tiny_model(eos_bias=50.0), split_dir, OPTIONS, runtime=FP32)
    assert report["count"] == 5 and all(p["prediction"] == "" for p in report["predictions"])
    for record in report["predictions"]:
        assert record["distances"] == {k: len(v.split()) for k, v in record["references"].items()}
    # v1 reference lengths 5, 3, 1, 7, 3: only the one-token expression is within 1 or 2 edits
    assert report["metrics"]["v1"] == {"exp_rate": 0.0, "le1": 20.0, "le2": 20.0, "wer": 100.0, "count": 5}


def test_oversized_images_are_decoded_alone_not_dropped(split_dir, monkeypatch):
    sizes = []
    decode_batch = evaluation._decode_batch
    monkeypatch.setattr(evaluation, "_decode_batch", lambda model, batch, *rest: (
        sizes.append(len(batch)), decode_batch(model, batch, *rest))[1])
    model = tiny_model().train()
    report = evaluate(model, split_dir, OPTIONS, max_pixels=10_000, runtime=FP32)
    assert sizes == [2, 1, 1, 1] and report["count"] == 5  # 12,800 and 28,800 pixels: over the budget
    assert model.training  # evaluation decodes in eval mode and leaves the mode as it found it


def test_limit_evaluates_the_first_expressions(split_dir):
    report = evaluate(tiny_model(), split_dir, DecodingOptions(beam_width=1, max_length=4), runtime=FP32, limit=2)
    assert report["count"] == 2 and report["limit"] == 2 and report["metrics"]["v1"]["count"] == 2


def test_git_state_counts_code_changes_but_not_a_fresh_weights_export(tmp_path, monkeypatch):
    def git(*arguments: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *arguments], cwd=tmp_path,
                       check=True, capture_output=True)

    for name in ("abm_lib/model.py", "abm_lib/weights/abm_paper.pt", "data_prep/build.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("v1")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    monkeypatch.setattr(evaluation, "REPO_ROOT", tmp_path.resolve())
    assert evaluation.git_state()[1] is False
    (tmp_path / "abm_lib/weights/abm_paper.pt").write_text("v2")  # exported, not yet committed
    assert evaluation.git_state()[1] is False
    (tmp_path / "data_prep/build.py").write_text("v2")
    assert evaluation.git_state()[1] is True


def test_provenance_records_commit_hash_training_state_and_platform(checkpoint):
    record = provenance(checkpoint)
    assert record["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert isinstance(record["git_commit"], str) and record["git_dirty"] in (True, False, None)
    assert record["config"]["model"]["encoder"]["growth_rate"] == tiny_config().encoder.growth_rate
    assert record["epoch"] == 3 and record["best_exprate"] == 12.5
    assert record["validation"] == {"epoch": 2, "valid_loss": 2.5, "valid_exprate": 12.5}
    assert datetime.datetime.fromisoformat(record["date"]).tzinfo is not None
    assert record["torch"] == torch.__version__ and record["platform"]


def test_report_files_round_trip_and_table(tmp_path, split_dir):
    report = evaluate(tiny_model(), split_dir, OPTIONS, runtime=FP32)
    path = write_report(report, tmp_path / "reports" / "tiny.json")
    assert read_report(path) == report and [p.name for p in path.parent.iterdir()] == ["tiny.json"]
    lines = results_table([report]).splitlines()
    assert lines[0].split() == ["split", "labels", "count", "ExpRate", "<=1", "<=2", "WER"]
    assert lines[2].split()[:3] == ["tiny", "v1", "5"] and lines[3].split()[:3] == ["tiny", "v2", "4"]
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an evaluation report"):
        read_report(tmp_path / "other.json")


def cli_arguments(checkpoint, data, *extra):
    return ["--checkpoint", str(checkpoint), "--data", str(data), "--beam", "2", "--max-length", "5",
            "--device", "cpu", "--precision", "fp32", *extra]


def test_cli_writes_one_report_per_split_with_provenance(tmp_path, split_dir, checkpoint, capsys):
    make_split(split_dir.parent, name="tiny2")
    out = tmp_path / "out"
    assert main(cli_arguments(checkpoint, split_dir.parent, "--split", "tiny", "--split", "tiny2",
                              "--out", str(out))) == 0
    for name in ("tiny", "tiny2"):
        report = read_report(out / f"{name}.json")
        assert report["split"] == name and report["count"] == 5
        assert report["provenance"]["checkpoint_sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        assert report["command"][:3] == ["python", "-m", "abm_lib.evaluate"] and "--split" in report["command"]
        assert report["decoding"]["beam_width"] == 2
    table = capsys.readouterr().out
    assert "tiny2" in table and "ExpRate" in table


def test_cli_default_output_sits_next_to_the_checkpoint(split_dir, checkpoint):
    assert main(cli_arguments(checkpoint, split_dir.parent, "--split", "tiny", "--limit", "1")) == 0
    assert read_report(checkpoint.parent / "eval_best" / "tiny.json")["count"] == 1


def other_architecture(tmp_path):
    """A checkpoint whose weights are those of a single-decoder model while its config says two."""
    single = ABM(tiny_config(directions=("l2r",)))
    return save_checkpoint(tmp_path / "other.pt", single, config=tiny_config())


@pytest.mark.parametrize("case, message", [
    ("no data", "does not exist"),
    ("unknown split", "no split 'test2099'"),
    ("no checkpoint", "no such checkpoint file"),
    ("corrupt checkpoint", "not a readable checkpoint"),
    ("other architecture", "does not fit"),
    ("one file, two splits", "names one file"),
])
def test_cli_bad_input_is_one_line_and_exit_code_1(tmp_path, split_dir, checkpoint, caplog, case, message):
    data, split, out = split_dir.parent, ["--split", "tiny"], []
    if case == "no data":
        data = tmp_path / "nowhere"
    elif case == "unknown split":
        split = ["--split", "test2099"]
    elif case == "no checkpoint":
        checkpoint = tmp_path / "missing.pt"
    elif case == "corrupt checkpoint":
        checkpoint = tmp_path / "corrupt.pt"
        checkpoint.write_bytes(b"this is not a checkpoint")
    elif case == "other architecture":
        checkpoint = other_architecture(tmp_path)
    else:
        split, out = ["--split", "tiny", "--split", "tiny"], ["--out", str(tmp_path / "one.json")]
    with caplog.at_level(logging.ERROR):
        assert main(cli_arguments(checkpoint, data, *split, *out)) == 1
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1 and message in errors[0] and "\n" not in errors[0]
    if case == "unknown split":
        assert "available: tiny" in errors[0]


def test_cli_reads_exported_and_official_weights_too(tmp_path, split_dir, checkpoint):
    from abm_lib.official import save_official_checkpoint
    from abm_lib.pretrained import export_weights
    export_weights(checkpoint, tmp_path / "exported.pt")
    save_official_checkpoint(tiny_model(), tmp_path / "official.pkl")
    reports = {}
    for name in ("run/best.pt", "exported.pt", "official.pkl"):
        out = tmp_path / f"{name.replace('/', '_')}.json"
        assert main(cli_arguments(tmp_path / name, split_dir.parent, "--split", "tiny", "--out", str(out))) == 0
        reports[name] = read_report(out)
    answers = {name: [p["prediction"] for p in r["predictions"]] for name, r in reports.items()}
    assert answers["official.pkl"] == answers["run/best.pt"]  # the conversion is exact
    assert reports["exported.pt"]["provenance"]["exported_from"]["epoch"] == 2
    assert "config" not in reports["official.pkl"]["provenance"]  # a bare state dict says nothing of its training
