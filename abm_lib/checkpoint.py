"""Checkpoint files: atomic writes, readable errors, strict loading that lists what does not fit."""
from __future__ import annotations

import hashlib
import os
import random
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np
import torch
from torch import nn


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message says which file and what to do."""


def atomic_write(path: Path | str, write: Callable[[IO], None], binary: bool = True) -> None:
    """Write through `write(file)` to a temporary file in the same folder, flushed, then renamed
    into place: a crash leaves the old file whole and no partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; give it a normal file's mode
        with os.fdopen(handle, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def atomic_save(obj, path: Path | str) -> None:
    """torch.save, atomically."""
    atomic_write(path, lambda file: torch.save(obj, file))


def read_checkpoint(path: Path | str) -> dict:
    """Load a checkpoint dict on the CPU; a missing or corrupt file raises CheckpointError.

    Always with weights_only=True: tensors and plain containers only, so a file from
    elsewhere (an official .pkl, a download) cannot run code when it is opened.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds for a damaged file
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {reason}); "
                              "re-download or re-export it") from None


def state_dict_mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable lines for missing keys, unexpected keys and shape mismatches."""
    expected = model.state_dict()
    lines = [f"missing: {k} {tuple(v.shape)}" for k, v in expected.items() if k not in state]
    lines += [f"unexpected: {k} {tuple(v.shape)}" for k, v in state.items() if k not in expected]
    lines += [f"shape: {k} is {tuple(state[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    return lines


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load weights only if every key and shape fits; otherwise list what does not."""
    problems = state_dict_mismatches(model, state)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CheckpointError(f"{source} does not fit this model's architecture ({len(problems)} problems):\n  {shown}")
    model.load_state_dict(state)


def file_sha256(path: Path | str) -> str:
    """SHA-256 of a file, for provenance records."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def capture_rng_state() -> dict:
    """Every RNG's state as tensors and numbers, so checkpoints load with weights_only=True."""
    _, keys, position, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss}}


def restore_rng_state(state: dict) -> None:
    """Put back what capture_rng_state saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["internal"].tolist()), python["gauss"]))
