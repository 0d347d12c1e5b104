"""The command line end to end on the repository sample, and its one-line input errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_prep.__main__ import main
from data_prep.build import SPLITS
from data_prep.inkml import read_inkml
from data_prep.latex import normalize_latex
from data_prep.layout import read_captions
from data_prep.splits import load_split

REPO = Path(__file__).parents[1]
SAMPLE = REPO / "data_prep" / "sample"
CROHME, OFFLINE = SAMPLE / "crohme", SAMPLE / "crohme_offline"
FIXTURES = Path(__file__).parent / "fixtures" / "inkml"
DATA = REPO.parent / "shared" / "data"
EXPECTED_COUNTS = {"train": 300, "valid": 50, "test2014": 50, "test2016": 50,
                   "test2014_rendered": 50, "test2016_rendered": 50, "test2019": 50}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build every split of the sample once (2 workers), keeping what was printed."""
    out = tmp_path_factory.mktemp("prepared")
    capture = pytest.MonkeyPatch()
    printed = []
    capture.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    try:
        status = main(["build", "--crohme", str(CROHME), "--offline", str(OFFLINE),
                       "--out", str(out), "--workers", "2"])
    finally:
        capture.undo()
    return out, status, "\n".join(printed)


def test_build_succeeds_and_prints_a_summary_table(built):
    out, status, printed = built
    assert status == 0
    for name, count in EXPECTED_COUNTS.items():
        assert any(line.split()[:3] == [name, str(count), "0"] for line in printed.splitlines()), name


def test_manifest_lists_counts_skips_and_render_settings(built):
    out, _, _ = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["splits"]) == set(SPLITS)
    for name, count in EXPECTED_COUNTS.items():
        assert manifest["splits"][name]["count"] == count
        assert manifest["splits"][name]["skipped"] == []
    assert manifest["splits"]["valid"]["settings"]["render"]["pen_width"] > 0
    assert "render" not in manifest["splits"]["train"]["settings"]


def test_every_split_loads_with_its_label_sets_and_bright_ink(built):
    out, _, _ = built
    for name, count in EXPECTED_COUNTS.items():
        split = load_split(out / name)
        assert len(split) == count
        expected_sets = ["v1"] if name in ("train", "valid") else ["v1", "v2"]
        assert split.info["label_sets"] == expected_sets, name
        for sample in split.samples[:5]:
            assert sample.image.dtype == np.uint8 and sample.image.ndim == 2
            assert sample.image.max() == 255 and (sample.image > 127).mean() < 0.5  # ink on black


def test_labels_come_from_the_captions_or_the_normalised_truth(built):
    out, _, _ = built
    train = load_split(out / "train")
    captions = read_captions(OFFLINE / "train" / "caption.txt")
    assert all(s.labels["v1"] == captions[s.expression_id] for s in train.samples)
    valid = load_split(out / "valid")
    first = valid.samples[0]
    truth = read_inkml(CROHME / "TestINKMLGT" / f"{first.expression_id}.inkml").truth
    assert first.labels["v1"] == normalize_latex(truth)
    test2019 = load_split(out / "test2019")
    captions_v2 = read_captions(OFFLINE / "2019" / "caption_v2.txt")
    assert all(s.labels["v2"] == captions_v2[s.expression_id] for s in test2019.samples)


def test_bad_files_are_skipped_with_reasons_and_do_not_stop_the_build(tmp_path):
    crohme = tmp_path / "crohme"
    shutil.copytree(CROHME, crohme)
    for name in ("no_truth.inkml", "broken_xml.inkml", "MfrDB3088.inkml"):
        shutil.copy(FIXTURES / name, crohme / "TestINKMLGT" / name)
    out = tmp_path / "out"
    assert main(["build", "--crohme", str(crohme), "--offline", str(OFFLINE), "--out", str(out),
                 "--workers", "1", "--splits", "valid"]) == 0
    entry = json.loads((out / "manifest.json").read_text())["splits"]["valid"]
    assert entry["count"] == 50
    reasons = {Path(s["file"]).name: s["reason"] for s in entry["skipped"]}
    assert reasons["no_truth.inkml"] == "no LaTeX truth annotation"
    assert reasons["broken_xml.inkml"].startswith("broken XML")
    assert reasons["MfrDB3088.inkml"] == "empty file"
    assert load_split(out / "valid").info["skipped"] == entry["skipped"]


@pytest.mark.parametrize("arguments, message", [
    (["--crohme", "/no/such/folder", "--offline", str(OFFLINE)],
     "--crohme /no/such/folder: expected a folder containing TrainINKML/, TestINKMLGT/"),
    (["--crohme", str(CROHME), "--offline", str(CROHME)],
     f"--offline {CROHME}: expected a folder containing train/caption.txt"),
])
def test_a_wrong_input_folder_fails_at_once_with_one_line(tmp_path, capsys, arguments, message):
    out = tmp_path / "out"
    assert main(["build", *arguments, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {message}") and error.count("\n") == 1
    assert not out.exists()


def test_an_unknown_split_is_refused(tmp_path, capsys):
    assert main(["build", "--crohme", str(CROHME), "--offline", str(OFFLINE),
                 "--out", str(tmp_path), "--splits", "test2020"]) == 2
    assert "unknown split(s) test2020" in capsys.readouterr().err


def test_check_captions_prints_the_agreement_table(capsys):
    assert main(["check-captions", "--crohme", str(CROHME), "--reference", str(OFFLINE)]) == 0
    printed = capsys.readouterr().out
    assert "combined (train v1 + 2014 v1)" in printed
    assert any(line.startswith("2019    v2") for line in printed.splitlines())


def test_check_render_is_wired_to_render_check(capsys):
    pytest.importorskip("data_prep.render_check")
    assert main(["check-render", "--crohme", str(CROHME), "--offline", str(OFFLINE), "--limit", "3"]) == 0
    assert "2014" in capsys.readouterr().out


def test_the_sample_command_reproduces_the_repository_sample(tmp_path):
    if not (DATA / "crohme").is_dir():
        pytest.skip(f"full CROHME data not found at {DATA}; cannot remake the sample")
    assert main(["sample", "--crohme", str(DATA / "crohme"), "--offline", str(DATA / "crohme_offline"),
                 "--out", str(tmp_path)]) == 0

    def listing(root):
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "README.md")

    assert listing(tmp_path) == listing(SAMPLE)
    for caption in (SAMPLE / "crohme_offline").rglob("*.txt"):
        assert (tmp_path / caption.relative_to(SAMPLE)).read_text() == caption.read_text()
