"""The prepared-split format: a faithful round trip, and atomic writes."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_prep import splits
from data_prep.splits import Sample, load_split, write_split


def _samples():
    rng = np.random.default_rng(0)
    return [
        Sample("a", (rng.random((3, 5)) > 0.5).astype(np.uint8) * 255, {"v1": ["x", "^", "{", "2", "}"]}),
        Sample("b", np.zeros((1, 1), np.uint8), {"v1": ["1"], "v2": ["1"]}),
        Sample("c", np.full((4, 2), 255, np.uint8), {"v1": ["\\frac", "{", "a", "}", "{", "b", "}"]}),
    ]


def test_round_trip_keeps_ids_pixels_labels_and_info(tmp_path):
    samples = _samples()
    skipped = [{"file": "bad.inkml", "reason": "no LaTeX truth annotation"}]
    write_split(tmp_path, "demo", samples, skipped, {"render": {"pen_width": 3}})
    split = load_split(tmp_path / "demo")
    assert split.name == "demo" and len(split) == 3
    for original, loaded in zip(samples, split.samples):
        assert loaded.expression_id == original.expression_id
        assert loaded.image.dtype == np.uint8
        np.testing.assert_array_equal(loaded.image, original.image)
        assert loaded.labels == original.labels
    assert split.info["label_sets"] == ["v1", "v2"]
    assert split.info["skipped"] == skipped
    assert split.info["settings"] == {"render": {"pen_width": 3}}


def test_rewriting_replaces_the_old_split(tmp_path):
    write_split(tmp_path, "demo", _samples())
    write_split(tmp_path, "demo", _samples()[:1])
    assert len(load_split(tmp_path / "demo")) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]


def test_an_exception_while_writing_leaves_no_split_and_no_debris(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(splits.np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        write_split(tmp_path, "demo", _samples())
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError, match="not a prepared split"):
        load_split(tmp_path / "demo")


def test_an_exception_while_rewriting_keeps_the_old_split(tmp_path, monkeypatch):
    write_split(tmp_path, "demo", _samples())
    monkeypatch.setattr(splits.np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_split(tmp_path, "demo", _samples()[:1])
    assert len(load_split(tmp_path / "demo")) == 3


def test_a_killed_process_leaves_no_complete_looking_split(tmp_path):
    """The process dies (no cleanup at all) after the pixels are written, before the rename."""
    script = textwrap.dedent(f"""
        import os
        import numpy as np
        from data_prep import splits
        real_save = np.save
        def save_then_die(*args, **kwargs):
            real_save(*args, **kwargs)
            os._exit(9)
        splits.np.save = save_then_die
        image = np.zeros((2, 2), np.uint8)
        splits.write_split({str(tmp_path)!r}, "demo", [splits.Sample("a", image, {{"v1": ["1"]}})])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == 9
    assert not (tmp_path / "demo").exists()
    leftovers = list(tmp_path.iterdir())
    assert all(p.name.startswith(".demo.") for p in leftovers)  # hidden temporary folder only
    assert not any((p / "split.json").exists() for p in leftovers)


def test_loading_a_truncated_index_is_refused(tmp_path):
    folder = write_split(tmp_path, "demo", _samples())
    lines = (folder / "samples.jsonl").read_text().splitlines()
    (folder / "samples.jsonl").write_text("\n".join(lines[:2]) + "\n")
    with pytest.raises(ValueError, match="split.json says 3 samples, found 2"):
        load_split(folder)
