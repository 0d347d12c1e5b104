"""Experiment configuration: the components' dataclasses composed once, loaded from YAML.

`load_config("paper", ["optim.lr=0.5", "model.decoder.coverage_kernels=[11]"])` reads a
shipped config (or a file path) and applies dotted overrides, whose values are parsed as
YAML. Unknown keys are errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .loss import LossConfig
from .model import ABMConfig

CONFIG_DIR = Path(__file__).with_name("configs")


@dataclass
class DataConfig:
    """Which prepared splits to use and how to batch them (official batching by default)."""

    data_dir: str = ""
    train_split: str = "train"
    valid_split: str = "valid"
    label_set: str = "v1"
    max_images: int = 16
    max_pixels: int = 320_000
    max_image_pixels: int = 320_000
    max_label_length: int = 200
    train_limit: int = 0  # >0: use only the first N training expressions (quick runs)
    valid_limit: int = 0


@dataclass
class OptimConfig:
    """Adadelta with the official settings and the halve-on-plateau schedule."""

    lr: float = 1.0
    eps: float = 1e-6
    rho: float = 0.9
    weight_decay: float = 1e-4
    clip_norm: float = 100.0
    patience: int = 15  # epochs without improvement of the schedule metric before halving
    lr_factor: float = 0.5
    max_decays: int = 10  # after this many halvings, the next plateau stops training
    schedule_metric: str = "valid_loss"  # official; or "valid_exprate"


@dataclass
class TrainConfig:
    """The loop: length, devices, precision, validation and checkpoint cadence."""

    max_epochs: int = 1000
    seed: int = 1
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto (cpu: bf16, cuda: fp16) | fp32 | bf16 | fp16
    threads: int = 0  # CPU threads; 0 = torch's default
    valid_beam_every: int = 0  # every N epochs also decode validation with beam 10 (logged, not selected on); 0 = never
    checkpoint_minutes: float = 20.0  # also save mid-epoch, so a kill loses at most this much
    keep_epoch_checkpoints: bool = False  # also keep epochNNN.pt of every epoch (ablations at a fixed budget)
    max_bad_steps: int = 5  # consecutive non-finite losses before giving up
    max_steps: int = 0  # >0: stop after this many optimizer steps in all (tests)


@dataclass
class ExperimentConfig:
    model: ABMConfig = field(default_factory=ABMConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def from_dict(cls: type, values: dict, where: str = ""):
    """Build dataclass `cls` from nested dicts, checking keys; lists become tuples where typed so."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise KeyError(f"unknown config key(s) {sorted(where + k for k in unknown)}; known: {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = from_dict(hint, value or {}, f"{where}{name}.")
        elif typing.get_origin(hint) is tuple:
            value = tuple(value) if isinstance(value, (list, tuple)) else (value,)
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(config) -> dict:
    """A plain, YAML-friendly dict (tuples as lists)."""
    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return plain(dataclasses.asdict(config))


def apply_override(values: dict, override: str) -> None:
    """Set `a.b.c=value` in nested dicts; value parsed as YAML (numbers, lists, booleans)."""
    if "=" not in override:
        raise ValueError(f"override {override!r} must look like section.key=value")
    key, raw = override.split("=", 1)
    *path, last = key.strip().split(".")
    node = values
    for part in path:
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(raw)


def load_config(name_or_path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    """A shipped config by name (`paper`, `quick`) or a YAML file, with dotted overrides."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        shipped = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no config {name_or_path!r}: not a file, and not one of {shipped}")
    values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for override in overrides:
        apply_override(values, override)
    return from_dict(ExperimentConfig, values)
