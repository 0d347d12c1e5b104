"""The official learning-rate schedule: halve after `patience` epochs without improvement."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PlateauSchedule:
    """Halve the learning rate after `patience` epochs without improvement, at most `max_decays` times."""

    lr: float
    patience: int
    factor: float
    max_decays: int
    minimize: bool = True
    best: float | None = None
    bad_epochs: int = 0
    decays: int = 0

    def update(self, value: float) -> str:
        """Record an epoch's metric; returns 'improved', 'wait', 'decayed' or 'stop'."""
        better = self.best is None or (value < self.best if self.minimize else value > self.best)
        if better:
            self.best, self.bad_epochs = value, 0
            return "improved"
        self.bad_epochs += 1
        if self.bad_epochs <= self.patience:
            return "wait"
        if self.decays >= self.max_decays:
            return "stop"
        self.lr *= self.factor
        self.decays += 1
        self.bad_epochs = 0
        return "decayed"


def shortest_run(patience: int, max_decays: int) -> int:
    """The fewest epochs after which the schedule can stop a run: a first epoch, then
    max_decays + 1 plateaus of patience + 1 epochs without improvement."""
    return 1 + (max_decays + 1) * (patience + 1)
