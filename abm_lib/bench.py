"""Command line: training and beam-search throughput of the official-size model.

    python -m abm_lib.bench [--device auto] [--threads N] [--repeats 3] [--official CLONE] [--out FILE]

Training: one optimiser step with both decoders on a batch of 16 images of 96x272 with
17-token labels (the setting in which the official code was timed). Search: beam width
10 on the same 16 images for exactly 17 steps (eos suppressed), so every implementation
does the same work. Printed for fp32 and for the runtime's default precision; with
`--official` also for the official code (a clone of XH-B/ABM, see official_bench.py) on the
same workload in the same process, with the speed-ups. `--out` saves the figures as JSON with
their provenance (commit, machine, threads, date).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import official_bench
from .checkpoint import atomic_write
from .data import Example, collate
from .decoding import DecodingOptions, beam_search
from .evaluation import code_and_machine
from .loss import LossConfig, bidirectional_loss
from .model import ABM
from .results import benchmark_rows
from .runtime import Runtime, resolve_runtime
from .vocab import default_vocabulary

BATCH, HEIGHT, WIDTH, TOKENS = 16, 96, 272, 17


def synthetic_batch(seed: int = 0):
    """16 sparse random 'ink' images and random labels: the benchmark's fixed workload."""
    rng = np.random.default_rng(seed)
    examples = [Example(str(i), ((rng.random((HEIGHT, WIDTH)) > 0.9) * 255).astype(np.uint8),
                        rng.integers(2, 112, TOKENS).tolist()) for i in range(BATCH)]
    return collate(examples, default_vocabulary())


def training_images_per_second(runtime: Runtime, repeats: int) -> float:
    torch.manual_seed(0)
    model = runtime.prepare(ABM()).train()
    batch = synthetic_batch().to(runtime.device, runtime.channels_last)
    optimizer = official_optimizer(model)

    def step() -> None:
        with runtime.autocast():
            outputs = model(batch.images, batch.image_mask, batch.inputs)
            terms = bidirectional_loss({d: o[0] for d, o in outputs.items()}, batch.targets,
                                       batch.target_mask, batch.lengths.to(runtime.device), LossConfig())
        optimizer_step(terms.total, model, optimizer)

    return BATCH / _best_time(step, runtime, repeats)


def official_optimizer(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adadelta(model.parameters(), lr=1.0, eps=1e-6, weight_decay=1e-4)


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Backward, gradient-norm clip at 100 and update: the official recipe's step."""
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 100.0)
    optimizer.step()


def search_images_per_second(runtime: Runtime, repeats: int) -> float:
    torch.manual_seed(0)
    model = runtime.prepare(ABM()).eval()
    with torch.no_grad():
        model.decoders["l2r"].classifier.bias[default_vocabulary().eos_id] = -1e4  # exactly TOKENS steps
    batch = synthetic_batch().to(runtime.device, runtime.channels_last)
    options = DecodingOptions(beam_width=10, max_length=TOKENS, return_attention=False)

    def search() -> None:
        with runtime.autocast():
            beam_search(model, batch.images, batch.image_mask, options)

    return BATCH / _best_time(search, runtime, repeats)


def _best_time(function, runtime: Runtime, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if runtime.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def official_images_per_second(folder: Path, device: torch.device, repeats: int) -> dict[str, float]:
    """Training and beam-search images/s of the official code on the same workload, fp32."""
    modules = official_bench.import_official(folder)
    runtime = Runtime(device, "fp32")
    batch = synthetic_batch().to(device)
    with official_bench.cuda_calls_stay_put():
        model = official_bench.official_model(modules, device).train()
        optimizer = official_optimizer(model)
        train = BATCH / _best_time(lambda: optimizer_step(official_bench.official_loss(model, batch), model, optimizer),
                                   runtime, repeats)
        model.eval()
        official_bench.suppress_end_token(model)
        search = BATCH / _best_time(lambda: official_bench.official_search(modules, model, batch.images, 10, TOKENS),
                                    runtime, repeats)
    return {"training": train, "beam_search": search}


def measure(device: str, repeats: int, official: Path | None) -> dict:
    """Every figure of one benchmark run, keyed by implementation and precision."""
    default = resolve_runtime(device, "auto")
    figures = {}
    for precision in dict.fromkeys(["fp32", default.precision]):
        runtime = resolve_runtime(device, precision)
        figures[f"ours_{precision}"] = {"training": training_images_per_second(runtime, repeats),
                                        "beam_search": search_images_per_second(runtime, repeats)}
    if official is not None:
        figures["official_fp32"] = official_images_per_second(official, default.device, repeats)
    return {"figures": figures, "default": f"ours_{default.precision}", "device": str(default.device),
            "threads": torch.get_num_threads(), "repeats": repeats,
            "workload": {"batch": BATCH, "height": HEIGHT, "width": WIDTH, "tokens": TOKENS, "beam_width": 10}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m abm_lib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--official", type=Path, help="a clone of the official code (github.com/XH-B/ABM)")
    parser.add_argument("--out", type=Path, help="save the figures and their provenance as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"workload: batch {BATCH} of {HEIGHT}x{WIDTH}, {TOKENS} tokens; beam width 10")
    result = measure(args.device, args.repeats, args.official)
    header, rows = benchmark_rows(result)
    for row in [header, *rows]:
        print("  ".join(f"{cell:>{len(title)}s}" for cell, title in zip(row, header)))
    if args.out:
        result["provenance"] = {**code_and_machine(), "cpu_count": os.cpu_count()}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, lambda file: json.dump(result, file, indent=1), binary=False)
        print(f"saved {args.out}")


if __name__ == "__main__":
    main()
