"""The official ABM implementation timed on the benchmark's workload, for a side-by-side figure.

None of the official code is in this repository: the reader points `--official` at their own
clone of github.com/XH-B/ABM, and its modules (encoder_decoder.py, utils.py) are imported from
there and run as they are. The official code moves every tensor with `.cuda()`; on a machine
without a GPU that call is made a no-op for the duration of the measurement, nothing else is
changed. Its training step is timed with its own forward pass, our loss with the official KL
pairing (the loss is a negligible part of a step) and the official optimiser; its search is
`utils.gen_sample_bidirection`, one image at a time, as its test.py calls it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from .loss import LossConfig, bidirectional_loss

OFFICIAL_MODULES = ("encoder_decoder", "utils")
OFFICIAL_PARAMS = {"n": 256, "m": 256, "dim_attention": 512, "D": 684, "K": 113, "growthRate": 24,
                   "reduction": 0.5, "bottleneck": True, "use_dropout": True, "input_channels": 1,
                   "L2R": 1, "R2L": 1}  # the values of the official train.py
EOS = 1


@contextlib.contextmanager
def cuda_calls_stay_put():
    """Make `tensor.cuda()` return the tensor itself while no GPU is present (official code runs on CPU)."""
    if torch.cuda.is_available():
        yield
        return
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def import_official(folder: Path | str, names: tuple[str, ...] = OFFICIAL_MODULES) -> dict[str, ModuleType]:
    """The official modules `names` (encoder_decoder and utils) loaded from a clone of the official repository.

    Loaded from their files under private names, so that a module called `utils` elsewhere on
    the path is neither taken instead nor replaced; their own imports (encoder, decoder) are
    found through the clone's folder, put first on sys.path for the time of the import.
    """
    folder = Path(folder).resolve()
    absent = [f"{name}.py" for name in names if not (folder / f"{name}.py").is_file()]
    if absent:
        raise FileNotFoundError(f"{folder} is not a clone of the official ABM code: {', '.join(absent)} missing")
    sys.path.insert(0, str(folder))
    try:
        return {name: _load(folder / f"{name}.py", f"official_abm_{name}") for name in names}
    except ImportError as error:
        raise ImportError(f"the official code in {folder} needs a package that is not installed: {error}") from error
    finally:
        sys.path.remove(str(folder))


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def official_model(modules: dict[str, ModuleType], device: torch.device,
                   params: dict = OFFICIAL_PARAMS) -> torch.nn.Module:
    """The official Encoder_Decoder with its own initialisation (seed 0)."""
    torch.manual_seed(0)
    return modules["encoder_decoder"].Encoder_Decoder(dict(params)).to(device)


def official_logits(model: torch.nn.Module, batch, params: dict = OFFICIAL_PARAMS) -> dict[str, torch.Tensor]:
    """The official model's forward pass on one of our batches: {direction: logits (B,T,K)}."""
    mask = batch.target_mask.float()
    l2r, _, r2l, _ = model(dict(params), batch.images, batch.image_mask.float(),
                           batch.inputs["l2r"], mask, batch.inputs["r2l"], mask)
    return {"l2r": l2r, "r2l": r2l}


def official_loss(model: torch.nn.Module, batch) -> torch.Tensor:
    """The official model's forward pass on our benchmark batch (fp32, as the official code runs) and its loss."""
    logits = official_logits(model, batch)
    return bidirectional_loss(logits, batch.targets, batch.target_mask, batch.lengths.to(logits["l2r"].device),
                              LossConfig(kl_alignment="official")).total


def official_search(modules: dict[str, ModuleType], model: torch.nn.Module, images: torch.Tensor,
                    width: int, steps: int) -> None:
    """The official beam search over the images one by one (the caller suppresses <eos>)."""
    with torch.no_grad(), np.errstate(divide="ignore"):  # log(0) of the suppressed <eos>: +inf cost, never chosen
        for image in images:
            modules["utils"].gen_sample_bidirection(model, image[None], dict(OFFICIAL_PARAMS), False,
                                                    k=width, maxlen=steps, idx_decoder=1)


def suppress_end_token(model: torch.nn.Module) -> None:
    """<eos> never wins, so every search runs the same number of steps as ours."""
    with torch.no_grad():
        model.gru_prob_model.fc_W0.bias[EOS] = -1e4
