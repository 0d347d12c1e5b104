"""The repository's results/ folder, read for the book: runs, their logs and evaluation reports.

    results/abm_paper/            the reference run (the `paper` config)
        metrics.jsonl             one line per epoch (training.Trainer)
        config.yaml               the run's full config
        train.log                 optional: the trainer's log, for the epoch in progress
        eval/<split>.json         reports of `python -m abm_lib.evaluate`
    results/ablations/<variant>/  the same for each variant of ABLATIONS at the study's budget
        selection.json            budget (epochs) and the epoch evaluated (`python -m abm_lib.ablate`)
    results/bench.json            `python -m abm_lib.bench --official ... --out`: ours beside the official code
    results/parity.json           `python -m abm_lib.parity --official ... --out`: the same weights, both codes

Any of these may be missing (training takes days on a CPU): readers return empty values,
and `missing` says which command produces what is absent. Nothing here computes a metric;
reports are shown as `abm_lib.evaluation.evaluate` wrote them.
"""
from __future__ import annotations

import datetime
import json
import math
import re
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .checkpoint import file_sha256
from .evaluation import read_report
from .schedule import shortest_run
from .training import best_epoch, read_metrics

RESULTS_DIR = Path(__file__).resolve().parents[1] / "results"
REFERENCE_RUN = "abm_paper"

# ExpRate (%) reported by the paper (Bian et al., AAAI 2022; stated in its abstract): L2R branch,
# beam 10, no data augmentation, no ensemble; CROHME test images with the v1 (WAP) captions.
PAPER_EXPRATE = {"test2014": 56.85, "test2016": 52.92, "test2019": 53.96}
PAPER_CITATION = ("Bian, Qin, Xin, Li, Su, Wang, \"Handwritten Mathematical Expression Recognition via "
                  "Attention Aggregation based Bi-directional Mutual Learning\", AAAI 2022 (arXiv:2112.03603)")

# The test sets as the book's tables show them: (year, our standard-image split, our rendered split).
# CROHME 2019 has no standard offline images here: our renders of its InkML stand in for them.
TEST_SETS = (("2014", "test2014", "test2014_rendered"),
             ("2016", "test2016", "test2016_rendered"),
             ("2019", None, "test2019"))


@dataclass(frozen=True)
class Ablation:
    """One row of the ablation study: a name, what it tests, and its config overrides."""

    name: str
    description: str
    overrides: tuple[str, ...]


# Overrides on top of the `paper` config. The full model's row is the reference run at the
# study's budget (abm_lib.ablate), so it is never trained twice.
ABLATIONS = (
    Ablation("dwap", "DWAP baseline: L2R decoder only, single-scale coverage (11x11)",
             ("model.directions=[l2r]", "model.decoder.coverage_kernels=[11]")),
    Ablation("dwap_aam", "+ AAM: L2R only, coverage at 11x11 and 5x5",
             ("model.directions=[l2r]", "model.decoder.coverage_kernels=[11,5]")),
    Ablation("dwap_bml", "+ bi-directional mutual learning, single-scale coverage",
             ("model.directions=[l2r,r2l]", "model.decoder.coverage_kernels=[11]")),
    Ablation("abm", "ABM: both (the reference run, results/abm_paper)", ()),
    Ablation("abm_official_kl", "ABM with the official code's KL row pairing",
             ("loss.kl_alignment=official",)),
)


@dataclass
class RunResults:
    """What a run folder holds; empty fields for the files that are not there (yet)."""

    folder: Path
    metrics: list[dict] = field(default_factory=list)
    config: dict | None = None
    reports: dict[str, dict] = field(default_factory=dict)  # split -> evaluation report
    log_progress: dict | None = None  # the last progress line of train.log
    selection: dict | None = None  # ablations: the budget and the epoch evaluated (selection.json)

    @property
    def exists(self) -> bool:
        return bool(self.metrics or self.config or self.reports)


def results_dir(override: Path | str | None = None) -> Path:
    """The results folder: `override` if given, else the repository's results/."""
    return Path(override) if override else RESULTS_DIR


def load_run(folder: Path | str) -> RunResults:
    """Read a run folder of the layout above; absent files leave their fields empty."""
    folder = Path(folder)
    config_file = folder / "config.yaml"
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.is_file() else None
    reports = {}
    for path in sorted((folder / "eval").glob("*.json")):
        report = read_report(path)
        reports[report["split"]] = report
    selection_file = folder / "selection.json"
    selection = json.loads(selection_file.read_text(encoding="utf-8")) if selection_file.is_file() else None
    return RunResults(folder, read_metrics(folder / "metrics.jsonl"), config, reports,
                      last_progress(folder / "train.log"), selection)


def ablation_folder(folder: Path | str, name: str) -> Path:
    """Where the results of ablation variant `name` live inside a results folder."""
    return Path(folder) / "ablations" / name


def missing(what: str, command: str, then: str = "") -> str:
    """The sentence the book prints for a result that is not there yet."""
    return f"Not yet available: {what}. Run `{command}` to produce it" + (f", then {then}." if then else ".")


def _load_json(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_benchmark(folder: Path | str) -> dict | None:
    """results/bench.json as `abm_lib.bench` wrote it, or None if it is absent."""
    return _load_json(Path(folder) / "bench.json")


def load_parity(folder: Path | str) -> dict | None:
    """results/parity.json as `abm_lib.parity` wrote it, or None if it is absent."""
    return _load_json(Path(folder) / "parity.json")


def parity_rows(parity: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows): the largest relative difference between ours and the official code, per quantity."""
    forward, gradients = parity["forward"], parity["gradients"]
    worst_gradient = max(gradients, key=lambda row: row["max_relative"])
    after, control = parity["weights_after_training"], parity["control_weights_after_training"]
    rows = [["L2R logits", f"{max(row['l2r'] for row in forward):.1e}", ""],
            ["R2L logits", f"{max(row['r2l'] for row in forward):.1e}", ""],
            ["loss", f"{max(abs(row['loss_ours'] / row['loss_official'] - 1) for row in forward):.1e}", ""],
            ["gradients", f"{worst_gradient['max_relative']:.1e}", f"`{worst_gradient['worst_parameter']}`"],
            [f"weights after {parity['steps']} steps (fp32)", f"{after['max_relative']:.1e}",
             f"`{after['worst_parameter']}`"],
            [f"control: ours against ours started {parity['perturbation']:.0e} apart, after {parity['steps']} steps",
             f"{control['max_relative']:.1e}", f"`{control['worst_parameter']}`"]]
    return ["quantity", "largest relative difference", "where"], rows


def benchmark_rows(benchmark: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of training and beam-search images/s per implementation, with the speed-up
    over the official code where it was measured in the same run."""
    figures = benchmark["figures"]
    official = figures.get("official_fp32")
    header = ["implementation", "training images/s", "beam search images/s"]
    if official:
        header += ["training speed-up", "search speed-up"]
    rows = []
    for name, figure in figures.items():
        row = [name.replace("_", " "), f"{figure['training']:.1f}", f"{figure['beam_search']:.1f}"]
        if official:
            row += [f"{figure['training'] / official['training']:.2f}x",
                    f"{figure['beam_search'] / official['beam_search']:.2f}x"]
        rows.append(row)
    return header, rows


# ----------------------------------------------------------------- comparison
NOT_YET = "not yet available"


def comparison_rows(reports: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of ExpRate per test set: the paper's figure beside ours on the standard
    images and on our renders, each scored on the v1 and the v2 labels; NOT_YET where a report
    is missing, "-" where a split does not exist (2019 has no standard images)."""
    header = ["CROHME", "paper (v1)", "ours, standard images, v1", "ours, standard images, v2",
              "ours, our renders, v1", "ours, our renders, v2"]
    rows = []
    for year, standard, rendered in TEST_SETS:
        row = [year, f"{PAPER_EXPRATE[f'test{year}']:.2f}"]
        for split in (standard, rendered):
            for label_set in ("v1", "v2"):
                if split is None:
                    row.append("-")
                elif split not in reports:
                    row.append(NOT_YET)
                else:
                    metrics = reports[split]["metrics"].get(label_set)
                    row.append(f"{metrics['exp_rate']:.2f}" if metrics else "-")
        rows.append(row)
    return header, rows


def gap_to_paper(run: RunResults) -> dict:
    """How far a run is from the paper, and the evidence for why, read from its files.

    rows: per test year, the paper's ExpRate, ours (v1; standard images, else our renders),
    the gap, and ours on standard images minus ours on our renders (what the renderer moves).
    training: epochs trained, the best validation epoch with its ExpRate and decoding, whether
    the best is the last epoch (still improving), and the fewest epochs the run's schedule allows.
    """
    rows = []
    for year, standard, rendered in TEST_SETS:
        ours_standard = _exprate(run.reports, standard)
        ours_rendered = _exprate(run.reports, rendered)
        ours = ours_standard if ours_standard is not None else ours_rendered
        paper = PAPER_EXPRATE[f"test{year}"]
        rows.append({"year": year, "paper": paper, "ours": ours, "gap": None if ours is None else paper - ours,
                     "on_renders": "rendered" if ours_standard is None else "standard",
                     "standard_minus_rendered": (None if ours_standard is None or ours_rendered is None
                                                 else ours_standard - ours_rendered)})
    training = {"epochs": len(run.metrics)}
    if run.metrics:
        best = best_epoch(run.metrics, budget=len(run.metrics))
        best_row = next(row for row in run.metrics if row["epoch"] == best)
        training |= {"best_epoch": best, "best_valid_exprate": best_row["valid_exprate"],
                     "best_valid_decoding": best_row.get("valid_decoding", "greedy"),
                     "still_improving": best == run.metrics[-1]["epoch"]}
    optim = (run.config or {}).get("optim") or {}
    if "patience" in optim and "max_decays" in optim:
        training["shortest_run"] = shortest_run(optim["patience"], optim["max_decays"])
    return {"rows": rows, "training": training}


def _exprate(reports: dict[str, dict], split: str | None) -> float | None:
    """ExpRate (v1) of a split's report, None if there is none."""
    if split is None or split not in reports:
        return None
    return (reports[split]["metrics"].get("v1") or {}).get("exp_rate")


# -------------------------------------------------------------------- provenance
def file_provenance(path: Path | str) -> str:
    """A data file's identity for a caption: SHA-256, last commit that touched it, modification time."""
    path = Path(path)
    modified = datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.timezone.utc)
    try:
        commit = subprocess.run(["git", "log", "-1", "--format=%h %cs", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return (f"`{path.name}` SHA-256 `{file_sha256(path)[:16]}…`, modified {modified.isoformat(timespec='seconds')}, "
            + (f"committed in {commit}" if commit else "not committed"))


def provenance_note(report: dict) -> str:
    """One line of Markdown saying where a report's numbers come from."""
    origin = report.get("provenance") or {}
    commit = origin.get("git_commit", "unknown")
    state = {True: " (uncommitted changes)", False: "", None: ""}[origin.get("git_dirty")]
    sha = origin.get("checkpoint_sha256", "")
    checkpoint = Path(origin.get("checkpoint", "?")).name
    exported_from = origin.get("exported_from") or {}
    if origin.get("epoch") is not None:  # a training checkpoint: its epoch counter = epochs finished
        epochs = origin["epoch"]
    elif exported_from.get("epoch") is not None:  # exported weights: the index of the last finished epoch
        epochs = exported_from["epoch"] + 1
    else:
        epochs = None
    decoding = report.get("decoding", {})
    parts = [f"commit `{commit[:10]}`{state}",
             f"checkpoint `{checkpoint}` SHA-256 `{sha[:16]}…`" if sha else f"checkpoint `{checkpoint}`",
             f"{epochs} epoch(s) trained" if epochs is not None else None,
             "a warm-started run (optimiser restarted; results/README.md)"
             if exported_from.get("warm_started_from") else None,
             f"evaluated {origin.get('date', '?')}",
             f"beam {decoding.get('beam_width', '?')}, {report.get('precision', '?')} on {report.get('device', '?')}",
             config_summary(origin.get("config"))]
    return " · ".join(part for part in parts if part)


def reports_of_other_weights(reports: dict[str, dict], weights_file: Path | str) -> list[str]:
    """Splits whose report evaluated other weights than `weights_file` (by SHA-256): the
    shipped weights and the committed reports must be replaced together, and this says when not."""
    sha = file_sha256(weights_file)
    return sorted(split for split, report in reports.items()
                  if (report.get("provenance") or {}).get("checkpoint_sha256") != sha)


def config_summary(config: dict | None) -> str | None:
    """The settings an ablation varies, from a training config dict (or None)."""
    if not isinstance(config, dict):
        return None
    model = config.get("model", config)
    decoder = model.get("decoder", {})
    loss = config.get("loss", {})
    items = [f"directions {'+'.join(model['directions'])}" if "directions" in model else None,
             f"coverage kernels {decoder['coverage_kernels']}" if "coverage_kernels" in decoder else None,
             f"KL pairing {loss['kl_alignment']}" if "kl_alignment" in loss else None,
             f"labels {config['data']['label_set']}" if "label_set" in config.get("data", {}) else None]
    items = [item for item in items if item]
    return "config: " + ", ".join(items) if items else None


def provenance_notes(reports: list[dict], labels: list[str] | None = None) -> list[str]:
    """The distinct provenance lines of some reports, each headed by what it covers
    (`labels`, one per report; by default the reports' split names)."""
    labels = labels if labels is not None else [report["split"] for report in reports]
    notes: dict[str, list[str]] = {}
    for report, label in zip(reports, labels, strict=True):
        notes.setdefault(provenance_note(report), []).append(label)
    return [f"{', '.join(covered)}: {note}" for note, covered in notes.items()]


# -------------------------------------------------------------------- throughput
_PROGRESS = re.compile(r"^(?P<time>\S+ \S+) INFO epoch (?P<epoch>\d+) step (?P<step>\d+)/(?P<steps>\d+) "
                       r"loss (?P<loss>\S+) images/s (?P<rate>[\d.]+)")
_DATA = re.compile(r"INFO train: (?P<expressions>\d+) expressions in (?P<batches>\d+) batches")


def last_progress(log_file: Path | str) -> dict | None:
    """The last 'epoch E step S/N loss L images/s R' line of a train.log as numbers, with the
    training set size the log reported; None if there is no such line."""
    log_file = Path(log_file)
    if not log_file.is_file():
        return None
    found, expressions = None, None
    for line in log_file.read_text(encoding="utf-8", errors="replace").splitlines():
        if match := _PROGRESS.match(line):
            found = match
        elif match := _DATA.search(line):
            expressions = int(match["expressions"])
    if found is None:
        return None
    return {"time": found["time"], "epoch": int(found["epoch"]), "step": int(found["step"]),
            "steps": int(found["steps"]), "loss": float(found["loss"]), "images_per_s": float(found["rate"]),
            "expressions": expressions}


def timed_epochs(metrics: list[dict]) -> list[tuple[dict, float]]:
    """(row, hours of training + validation) of each logged epoch that recorded its time."""
    return [(row, (row["train_seconds"] + row.get("valid_seconds", 0.0)) / 3600) for row in metrics
            if _finite(row.get("train_seconds"))]


def throughput(metrics: list[dict], progress: dict | None = None) -> dict:
    """Speed and time spent, from metrics.jsonl rows and, if given, the log's last progress line.

    images/s: mean training throughput over the logged epochs (else the log's current rate);
    hours per epoch: mean training + validation time of the logged epochs (else an estimate,
    training only: expressions / images per second); hours so far: the logged epochs plus the
    done share of the epoch in progress at hours per epoch. `estimated` says which applies.
    """
    rates = [row["train_images_per_s"] for row in metrics if _finite(row.get("train_images_per_s"))]
    epoch_hours = [hours for _, hours in timed_epochs(metrics)]
    current = progress if progress and progress["epoch"] >= len(metrics) and progress["steps"] else None
    images_per_s = sum(rates) / len(rates) if rates else (current or {}).get("images_per_s", math.nan)
    estimated = not epoch_hours
    if epoch_hours:
        hours_per_epoch = sum(epoch_hours) / len(epoch_hours)
    elif current and current.get("expressions") and current["images_per_s"] > 0:
        hours_per_epoch = current["expressions"] / current["images_per_s"] / 3600
    else:
        hours_per_epoch = math.nan
    share = current["step"] / current["steps"] if current else 0.0
    hours = sum(epoch_hours) + (share * hours_per_epoch if share and math.isfinite(hours_per_epoch) else 0.0)
    return {"epochs_completed": len(metrics), "epoch_in_progress": share, "images_per_s": images_per_s,
            "hours_per_epoch": hours_per_epoch, "hours_so_far": hours, "estimated": estimated}


def run_speed(run: RunResults) -> dict:
    """throughput() of a run, plus its CPU threads, core-hours (hours x threads) and the machines
    its epochs logged (`train_machine`: epochs per machine).

    Each epoch counts the threads it logged (`train_threads`; a resumed run may change them),
    else those the config fixes; the epoch in progress counts the config's. Unknown threads
    (train.threads 0, torch's default, in an epoch that did not log them) leave core-hours NaN.
    """
    speed = throughput(run.metrics, run.log_progress)
    configured = ((run.config or {}).get("train") or {}).get("threads") or None
    timed = timed_epochs(run.metrics)
    threads = [row.get("train_threads") or configured for row, _ in timed]
    hours = [epoch_hours for _, epoch_hours in timed]
    in_progress = speed["hours_so_far"] - sum(hours)
    if in_progress > 0:
        threads, hours = threads + [configured], hours + [in_progress]
    known = all(threads)
    cpu_hours = sum(h * t for h, t in zip(hours, threads)) if known and threads else math.nan
    distinct = sorted(set(threads)) if known and threads else []
    label = "/".join(map(str, distinct)) if len(distinct) > 1 else (distinct[0] if distinct else configured)
    machines = Counter(row.get("train_machine", "not logged") for row, _ in timed)
    return speed | {"threads": label, "cpu_hours": cpu_hours, "machines": dict(machines)}


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
