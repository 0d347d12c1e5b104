"""Pretrained weights: export a small, self-describing file and load a ready model from it.

An exported file holds the weights in fp16 (half the size of fp32; the model runs in
fp32 or bf16 anyway), the model config, the vocabulary, the image preprocessing the model
was trained with, and provenance (source checkpoint SHA-256, epoch, validation ExpRate,
date). `load_pretrained` also accepts this project's training checkpoints, their milestones and the
official XH-B/ABM checkpoints, recognised by their contents, not their names.

    python -m abm_lib.export runs/abm/best.pt abm_lib/weights/abm_paper.pt
"""
from __future__ import annotations

import datetime
import logging
from pathlib import Path

import torch

from .checkpoint import CheckpointError, atomic_save, file_sha256, load_state_strict, read_checkpoint
from .config import from_dict, to_dict
from .model import ABM, ABMConfig
from .official import model_from_official_state_dict, strip_data_parallel_prefix
from .preprocessing import PreprocessSettings
from .vocab import Vocabulary, default_vocabulary

log = logging.getLogger(__name__)

WEIGHTS_FORMAT = "abm-book/weights/1"
TRAINING_FORMAT = "abm-book/checkpoint/1"  # abm_lib.training.CHECKPOINT_FORMAT (not imported: heavy)
MILESTONE_FORMAT = "abm-book/milestone/1"  # abm_lib.milestone.MILESTONE_FORMAT: a packed training checkpoint
WEIGHTS_DIR = Path(__file__).with_name("weights")
DEFAULT_WEIGHTS = "abm_paper"


def _is_state_dict(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _read_source(path: Path) -> tuple[ABM, Vocabulary, PreprocessSettings, dict]:
    """Any supported file -> (model with its weights, vocabulary, preprocessing, provenance)."""
    contents = read_checkpoint(path)
    kind = contents.get("format") if isinstance(contents, dict) else None
    if kind == WEIGHTS_FORMAT:
        return _from_exported(contents, path)
    if kind in (TRAINING_FORMAT, MILESTONE_FORMAT):
        return _from_training(contents, path)
    if _is_state_dict(contents) and "encoder1.conv1.weight" in strip_data_parallel_prefix(contents):
        return _from_official(contents, path)
    if _is_state_dict(contents) and "encoder.stem.weight" in contents:
        raise CheckpointError(f"{path}: a bare state dict of this library's ABM without its config; "
                              "load it with ABM(config).load_state_dict(torch.load(path))")
    raise CheckpointError(f"{path}: not an ABM checkpoint (neither exported weights, a training checkpoint "
                          "of this project, nor an official XH-B/ABM state dict)")


def _build(config: dict | None, state: dict, path: Path) -> ABM:
    """ABM from a config dict and a state dict, loaded strictly (fp32)."""
    if not isinstance(config, dict) or not _is_state_dict(state):
        raise CheckpointError(f"{path}: incomplete checkpoint, no model config or no weights inside")
    try:
        model_config = from_dict(ABMConfig, config)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: its model config does not fit this library ({error})") from None
    model = ABM(model_config)
    load_state_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    return model


def _require(contents: dict, keys: tuple[str, ...], path: Path) -> None:
    missing = [key for key in keys if key not in contents]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint, it lacks {missing}")


def _from_exported(contents: dict, path: Path):
    _require(contents, ("model", "config", "vocab", "preprocessing", "provenance"), path)
    model = _build(contents["config"], contents["model"], path)
    preprocessing = PreprocessSettings.from_dict(contents["preprocessing"])
    return model, Vocabulary(tuple(contents["vocab"])), preprocessing, dict(contents["provenance"])


def _from_training(contents: dict, path: Path):
    _require(contents, ("model", "config", "vocab"), path)
    config = contents["config"] if isinstance(contents["config"], dict) else {}
    model = _build(config.get("model"), contents["model"], path)
    history = contents.get("history") or []
    last = history[-1] if history else {}
    provenance = {
        "source": path.name, "source_sha256": file_sha256(path), "source_format": contents["format"],
        "epoch": last.get("epoch"), "global_step": contents.get("global_step"),
        "valid_exprate": last.get("valid_exprate"), "valid_decoding": last.get("valid_decoding"),
        "best_valid_exprate": contents.get("best_exprate"),
        "label_set": (config.get("data") or {}).get("label_set"),
        "data_fingerprint": contents.get("data_fingerprint"),
        "warm_started_from": contents.get("warm_started_from") or None,
    }
    return model, Vocabulary(tuple(contents["vocab"])), PreprocessSettings(), provenance


def _from_official(contents: dict, path: Path):
    model = model_from_official_state_dict(contents, str(path))
    vocab = default_vocabulary()
    if len(vocab) != model.config.decoder.vocab_size:
        raise CheckpointError(f"{path}: the official model has {model.config.decoder.vocab_size} outputs but the "
                              f"standard dictionary {len(vocab)} tokens; export it with its own dictionary")
    provenance = {"source": path.name, "source_sha256": file_sha256(path),
                  "source_format": "official XH-B/ABM state dict"}
    return model, vocab, PreprocessSettings(), provenance


def _plain(value):
    """Python scalars only (numpy ones become float/int), so the file loads with weights_only=True."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def export_weights(checkpoint_path: Path | str, out_path: Path | str) -> dict:
    """Write fp16 weights + config + vocabulary + preprocessing + provenance; returns the provenance."""
    source = Path(checkpoint_path)
    model, vocab, preprocessing, provenance = _read_source(source)
    provenance["exported"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    provenance["torch"] = str(torch.__version__)
    provenance = {key: _plain(value) for key, value in provenance.items()}
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    atomic_save({"format": WEIGHTS_FORMAT, "model": state, "config": to_dict(model.config),
                 "vocab": list(vocab.tokens), "preprocessing": preprocessing.to_dict(),
                 "provenance": provenance}, out_path)
    log.info("exported %s -> %s", source, out_path)
    return provenance


def _resolve(path_or_name: Path | str | None) -> Path:
    """A file path, or the name of a file in abm_lib/weights/ (default: abm_paper)."""
    if path_or_name is not None and Path(path_or_name).is_file():
        return Path(path_or_name)
    name = DEFAULT_WEIGHTS if path_or_name is None else str(path_or_name)
    shipped = WEIGHTS_DIR / (name if name.endswith(".pt") else f"{name}.pt")
    if Path(name).name == name and shipped.is_file():
        return shipped
    if path_or_name is None:
        raise CheckpointError(
            f"no shipped weights yet ({shipped} does not exist). Train a model with "
            "`python -m abm_lib.train --config paper --data DATA --run-dir runs/abm`, export it with "
            f"`python -m abm_lib.export runs/abm/best.pt {shipped}`, or pass a checkpoint path")
    available = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt"))
    raise CheckpointError(f"{path_or_name}: no such checkpoint file, nor shipped weights of that name "
                          f"(shipped: {available or 'none yet'})")


def load_pretrained(path_or_name: str | Path | None = None, device: str | torch.device = "cpu") -> ABM:
    """A ready ABM in eval mode (fp32 weights on `device`) from exported weights, a training or an official checkpoint.

    The model carries `vocab`, `preprocessing` and `provenance` attributes, which `recognize` uses.
    """
    path = _resolve(path_or_name)
    model, vocab, preprocessing, provenance = _read_source(path)
    model.vocab, model.preprocessing, model.provenance = vocab, preprocessing, provenance
    return model.to(device).eval()
