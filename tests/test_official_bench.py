"""The harness that times the official code: its CPU shim and its errors (the official code is not shipped)."""
import pytest
import torch

from abm_lib import official_bench


@pytest.mark.skipif(torch.cuda.is_available(), reason="the shim is only active without a GPU")
def test_cuda_calls_return_the_tensor_itself_inside_and_are_restored_after():
    tensor = torch.ones(2)
    original = torch.Tensor.cuda
    with official_bench.cuda_calls_stay_put():
        assert tensor.cuda() is tensor
        assert torch.zeros(3).cuda().device.type == "cpu"
    assert torch.Tensor.cuda is original


def test_a_folder_without_the_official_files_is_refused_naming_them(tmp_path):
    (tmp_path / "utils.py").write_text("")
    with pytest.raises(FileNotFoundError, match=r"encoder_decoder\.py missing"):
        official_bench.import_official(tmp_path)


def test_modules_load_under_private_names_and_leave_sys_path_as_it_was(tmp_path):
    import sys

    (tmp_path / "helper.py").write_text("VALUE = 7\n")
    (tmp_path / "encoder_decoder.py").write_text("from helper import VALUE\n")
    (tmp_path / "utils.py").write_text("import helper\n")
    path_before = list(sys.path)
    modules = official_bench.import_official(tmp_path)
    assert modules["encoder_decoder"].VALUE == 7
    assert modules["utils"].__name__ == "official_abm_utils"
    assert sys.path == path_before


def test_a_missing_dependency_of_the_official_code_is_named(tmp_path):
    (tmp_path / "encoder_decoder.py").write_text("")
    (tmp_path / "utils.py").write_text("import a_package_nobody_installed\n")
    with pytest.raises(ImportError, match="a_package_nobody_installed"):
        official_bench.import_official(tmp_path)
