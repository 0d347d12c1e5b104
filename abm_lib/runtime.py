"""Device and numeric precision: one place decides how the model runs on CPU or CUDA.

CPU: bf16 autocast with the encoder in channels_last (`python -m abm_lib.bench` here, 2 cores:
11.9 versus 6.5 training images/s in fp32 for the official model, batch 16 at 96x272;
results/bench.json).
CUDA: fp16 autocast with a gradient scaler (or bf16 where asked).
"""
from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass

import torch
from torch import nn

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Runtime:
    """Where and in which precision to run."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16 (resolved, never auto)

    @property
    def channels_last(self) -> bool:
        return self.device.type == "cpu" and self.precision == "bf16"

    @property
    def needs_grad_scaler(self) -> bool:
        return self.device.type == "cuda" and self.precision == "fp16"

    def autocast(self):
        """The autocast context for forward passes (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def machine(self) -> str:
        """What a speed was measured on: the GPU's name, or the CPU's model and logical CPU count."""
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"{cpu_model()}, {os.cpu_count()} CPUs"

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move the model to the device; channels_last for the encoder where it pays."""
        model.to(self.device)
        if self.channels_last and hasattr(model, "encoder"):
            model.encoder.to(memory_format=torch.channels_last)
        return model


def resolve_runtime(device: str = "auto", precision: str = "auto") -> Runtime:
    """'auto' picks CUDA when present; precision 'auto' is bf16 on CPU and fp16 on CUDA."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for, but torch sees no CUDA GPU; use --device cpu")
    if precision == "auto":
        precision = "fp16" if resolved.type == "cuda" else "bf16"
    return Runtime(resolved, precision)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else what the platform module knows)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
