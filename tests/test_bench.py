"""The benchmark command: every figure measured, printed and saved with its provenance."""
import json

import pytest

from abm_lib import bench


@pytest.mark.timeout(600)
def test_the_benchmark_saves_both_precisions_and_their_provenance(tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--device", "cpu", "--repeats", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert set(result["figures"]) == {"ours_fp32", "ours_bf16"} and result["default"] == "ours_bf16"
    assert all(value > 0 for figure in result["figures"].values() for value in figure.values())
    assert result["workload"] == {"batch": 16, "height": 96, "width": 272, "tokens": 17, "beam_width": 10}
    assert {"git_commit", "date", "torch", "cpu_count"} <= set(result["provenance"])
    printed = capsys.readouterr().out
    assert "ours bf16" in printed and "official" not in printed


def test_an_official_folder_without_the_code_stops_the_benchmark_with_its_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder_decoder.py"):
        bench.official_images_per_second(tmp_path, bench.resolve_runtime("cpu").device, 1)
