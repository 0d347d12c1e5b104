"""Reading the results/ folder: absent files, reports, provenance lines, throughput from the logs."""
from __future__ import annotations

import json
import math

import pytest

from abm_lib.checkpoint import file_sha256
from abm_lib.config import load_config
from abm_lib.evaluation import write_report
from abm_lib.results import (ABLATIONS, PAPER_EXPRATE, ablation_folder, benchmark_rows, gap_to_paper, last_progress,
                             load_benchmark, load_parity, load_run, parity_rows, missing, provenance_note,
                             provenance_notes, reports_of_other_weights, run_speed, throughput)

REPORT = {
    "split": "test2014", "count": 2, "metrics": {"v1": {"exp_rate": 50.0, "le1": 100.0, "le2": 100.0, "wer": 10.0,
                                                        "count": 2}},
    "predictions": [], "decoding": {"beam_width": 10}, "device": "cpu", "precision": "bf16",
    "provenance": {"git_commit": "0123456789abcdef", "git_dirty": False, "checkpoint": "runs/abm/best.pt",
                   "checkpoint_sha256": "f" * 64, "epoch": 12, "date": "2025-01-02T03:04:05+00:00",
                   "config": {"model": {"directions": ["l2r", "r2l"], "decoder": {"coverage_kernels": [11, 5]}},
                              "loss": {"kl_alignment": "target"}, "data": {"label_set": "v1"}}},
}


def test_an_absent_or_empty_run_folder_reads_as_empty(tmp_path):
    run = load_run(tmp_path / "nothing")
    assert not run.exists and run.metrics == [] and run.reports == {} and run.config is None
    assert run.log_progress is None and run.selection is None


def test_a_run_folder_is_read_whole(tmp_path):
    write_report(REPORT, tmp_path / "eval" / "test2014.json")
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "train_loss": 3.0}) + "\n")
    (tmp_path / "config.yaml").write_text("model:\n  directions: [l2r]\n")
    run = load_run(tmp_path)
    assert run.exists and list(run.reports) == ["test2014"]
    assert run.metrics == [{"epoch": 0, "train_loss": 3.0}] and run.config["model"]["directions"] == ["l2r"]


def test_an_ablation_folder_holds_its_selection(tmp_path):
    folder = ablation_folder(tmp_path, "dwap")
    folder.mkdir(parents=True)
    (folder / "selection.json").write_text(json.dumps({"budget_epochs": 3, "selected_epoch": 2}))
    assert load_run(folder).selection == {"budget_epochs": 3, "selected_epoch": 2}


def test_a_file_that_is_not_a_report_is_an_error(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "test2014.json").write_text("{}")
    with pytest.raises(ValueError, match="not an evaluation report"):
        load_run(tmp_path)


def test_provenance_names_commit_checkpoint_epoch_date_decoding_and_config():
    note = provenance_note(REPORT)
    for part in ("`0123456789`", "`best.pt`", "`ffffffffffffffff…`", "12 epoch(s) trained", "2025-01-02",
                 "beam 10, bf16 on cpu", "directions l2r+r2l", "coverage kernels [11, 5]", "KL pairing target"):
        assert part in note
    exported = {**REPORT["provenance"], "exported_from": {"epoch": 4}}
    del exported["epoch"]
    assert "5 epoch(s) trained" in provenance_note({**REPORT, "provenance": exported})
    assert "warm-started" not in note
    warm = {**exported, "exported_from": {"epoch": 20, "warm_started_from": "abm_paper.pt (sha256 ab12), epoch 17"}}
    assert "a warm-started run" in provenance_note({**REPORT, "provenance": warm})
    assert "uncommitted" in provenance_note({**REPORT, "provenance": {**REPORT["provenance"], "git_dirty": True}})
    assert provenance_notes([REPORT, {**REPORT, "split": "test2016"}]) == [f"test2014, test2016: {note}"]
    assert provenance_notes([REPORT, REPORT], labels=["dwap", "abm"]) == [f"dwap, abm: {note}"]


def test_provenance_of_a_report_without_one_still_reads():
    assert "commit `unknown`" in provenance_note({"split": "x", "metrics": {}})


def test_missing_says_what_to_run():
    assert missing("ExpRate on test2014", "python -m abm_lib.evaluate ...") == (
        "Not yet available: ExpRate on test2014. Run `python -m abm_lib.evaluate ...` to produce it.")
    assert missing("a log", "train", then="copy it").endswith("to produce it, then copy it.")


def test_throughput_from_finished_epochs_and_the_epoch_in_progress():
    rows = [{"epoch": e, "train_images_per_s": rate, "train_seconds": 3000.0, "valid_seconds": 600.0}
            for e, rate in enumerate((3.0, 5.0))]
    done = throughput(rows)
    assert done["images_per_s"] == 4.0 and done["hours_per_epoch"] == 1.0 and done["hours_so_far"] == 2.0
    assert not done["estimated"]
    progress = {"epoch": 2, "step": 250, "steps": 1000, "images_per_s": 4.5, "expressions": 9000}
    assert throughput(rows, progress)["hours_so_far"] == pytest.approx(2.25)


def test_cpu_hours_count_the_threads_the_config_fixes(tmp_path):
    row = {"epoch": 0, "train_images_per_s": 2.0, "train_seconds": 3600.0, "valid_seconds": 0.0}
    (tmp_path / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "config.yaml").write_text("train:\n  threads: 2\n")
    assert run_speed(load_run(tmp_path))["cpu_hours"] == 2.0
    (tmp_path / "config.yaml").write_text("train:\n  threads: 0\n")
    speed = run_speed(load_run(tmp_path))
    assert speed["threads"] is None and math.isnan(speed["cpu_hours"])


def test_cpu_hours_and_machines_follow_what_each_epoch_logged(tmp_path):
    rows = [{"epoch": e, "train_images_per_s": 2.0, "train_seconds": 3600.0, "valid_seconds": 0.0, "train_threads": t}
            for e, t in enumerate((1, 2))]
    rows[1]["train_machine"] = "Some CPU, 2 CPUs"
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "config.yaml").write_text("train:\n  threads: 2\n")
    speed = run_speed(load_run(tmp_path))
    assert speed["cpu_hours"] == 3.0 and speed["threads"] == "1/2"
    assert speed["machines"] == {"not logged": 1, "Some CPU, 2 CPUs": 1}


def test_throughput_before_the_first_epoch_is_estimated_from_the_log():
    progress = {"epoch": 0, "step": 100, "steps": 1000, "images_per_s": 2.5, "expressions": 9000}
    early = throughput([], progress)
    assert early["estimated"] and early["hours_per_epoch"] == pytest.approx(1.0)
    assert early["hours_so_far"] == pytest.approx(0.1)
    assert math.isnan(throughput([])["hours_per_epoch"]) and throughput([])["hours_so_far"] == 0


def test_last_progress_reads_the_trainer_log(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "2025-01-01 10:00:00,000 INFO train: 8833 expressions in 1219 batches (2 left out); valid: 667\n"
        "2025-01-01 10:05:00,000 INFO epoch 0 step 100/1219 loss 6.4840 images/s 2.98\n"
        "2025-01-01 10:09:00,000 WARNING something else\n"
        "2025-01-01 10:10:00,000 INFO epoch 0 step 200/1219 loss 5.6772 images/s 3.10\n")
    assert last_progress(log) == {"time": "2025-01-01 10:10:00,000", "epoch": 0, "step": 200, "steps": 1219,
                                  "loss": 5.6772, "images_per_s": 3.10, "expressions": 8833}
    assert last_progress(tmp_path / "absent.log") is None


def test_every_ablation_is_a_valid_set_of_overrides_on_the_paper_config():
    names = [ablation.name for ablation in ABLATIONS]
    assert len(set(names)) == len(names)
    for ablation in ABLATIONS:
        load_config("paper", list(ablation.overrides))  # unknown keys or bad values raise


def test_the_paper_figures_are_the_three_published_test_sets():
    assert set(PAPER_EXPRATE) == {"test2014", "test2016", "test2019"}


def test_gap_to_paper_reads_the_gap_the_renderer_and_the_training_state(tmp_path):
    for split, rate in (("test2014", 20.0), ("test2014_rendered", 19.0), ("test2019", 15.0)):
        write_report({**REPORT, "split": split, "metrics": {"v1": {**REPORT["metrics"]["v1"], "exp_rate": rate}}},
                     tmp_path / "eval" / f"{split}.json")
    rows = [{"epoch": e, "valid_exprate": v, "valid_loss": 3.0 - e} for e, v in enumerate((0.0, 4.0, 9.0))]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "config.yaml").write_text("optim:\n  patience: 15\n  max_decays: 10\n")
    gap = gap_to_paper(load_run(tmp_path))
    by_year = {row["year"]: row for row in gap["rows"]}
    assert by_year["2014"]["gap"] == pytest.approx(56.85 - 20.0)
    assert by_year["2014"]["standard_minus_rendered"] == pytest.approx(1.0)
    assert by_year["2016"]["ours"] is None and by_year["2016"]["gap"] is None
    assert by_year["2019"]["ours"] == 15.0 and by_year["2019"]["on_renders"] == "rendered"
    assert gap["training"] == {"epochs": 3, "best_epoch": 2, "best_valid_exprate": 9.0, "best_valid_decoding": "greedy",
                               "still_improving": True, "shortest_run": 177}


def test_benchmark_rows_give_each_implementation_its_speed_up_over_the_official_code(tmp_path):
    assert load_benchmark(tmp_path) is None
    benchmark = {"figures": {"ours_bf16": {"training": 12.0, "beam_search": 24.0},
                             "official_fp32": {"training": 4.0, "beam_search": 3.0}}}
    (tmp_path / "bench.json").write_text(json.dumps(benchmark))
    header, rows = benchmark_rows(load_benchmark(tmp_path))
    assert header[-2:] == ["training speed-up", "search speed-up"]
    assert rows == [["ours bf16", "12.0", "24.0", "3.00x", "8.00x"], ["official fp32", "4.0", "3.0", "1.00x", "1.00x"]]


def test_benchmark_rows_without_the_official_code_have_no_speed_up_columns():
    header, rows = benchmark_rows({"figures": {"ours_fp32": {"training": 6.0, "beam_search": 12.0}}})
    assert header == ["implementation", "training images/s", "beam search images/s"]
    assert rows == [["ours fp32", "6.0", "12.0"]]


def test_parity_rows_show_the_worst_difference_of_each_quantity_and_where(tmp_path):
    assert load_parity(tmp_path) is None
    parity = {"forward": [{"l2r": 1e-7, "r2l": 3e-7, "loss_official": 8.0, "loss_ours": 8.0000008},
                          {"l2r": 2e-7, "r2l": 1e-7, "loss_official": 5.0, "loss_ours": 5.0}],
              "gradients": [{"max_relative": 2e-6, "worst_parameter": "encoder.stem.weight"},
                            {"max_relative": 5e-6, "worst_parameter": "decoders.l2r.classifier.bias"}],
              "weights_after_training": {"max_relative": 4e-3, "worst_parameter": "decoders.r2l.embedding.weight"},
              "control_weights_after_training": {"max_relative": 5e-3, "worst_parameter": "encoder.stem.weight"},
              "perturbation": 1e-7, "steps": 6}
    (tmp_path / "parity.json").write_text(json.dumps(parity))
    header, rows = parity_rows(load_parity(tmp_path))
    assert header == ["quantity", "largest relative difference", "where"]
    assert rows == [["L2R logits", "2.0e-07", ""], ["R2L logits", "3.0e-07", ""], ["loss", "1.0e-07", ""],
                    ["gradients", "5.0e-06", "`decoders.l2r.classifier.bias`"],
                    ["weights after 6 steps (fp32)", "4.0e-03", "`decoders.r2l.embedding.weight`"],
                    ["control: ours against ours started 1e-07 apart, after 6 steps", "5.0e-03", "`encoder.stem.weight`"]]


def test_reports_of_other_weights_are_named_by_split(tmp_path):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"shipped")
    matching = {**REPORT, "provenance": {"checkpoint_sha256": file_sha256(weights)}}
    other = {**REPORT, "provenance": {"checkpoint_sha256": "0" * 64}}
    reports = {"test2014": matching, "test2016": other, "test2019": {**REPORT, "provenance": {}}}
    assert reports_of_other_weights(reports, weights) == ["test2016", "test2019"]
    assert reports_of_other_weights({"test2014": matching}, weights) == []
