"""The official plateau schedule: when it waits, halves the learning rate, and stops."""
from __future__ import annotations

from abm_lib.schedule import PlateauSchedule, shortest_run


def test_halves_after_patience_bad_epochs_and_an_improvement_resets_the_count():
    schedule = PlateauSchedule(lr=1.0, patience=2, factor=0.5, max_decays=3)
    decisions = [schedule.update(v) for v in (5.0, 6.0, 6.0, 4.0, 6.0, 6.0, 6.0)]
    assert decisions == ["improved", "wait", "wait", "improved", "wait", "wait", "decayed"]
    assert schedule.lr == 0.5 and schedule.decays == 1 and schedule.bad_epochs == 0


def test_maximizing_a_metric_counts_a_rise_as_improvement():
    schedule = PlateauSchedule(lr=1.0, patience=1, factor=0.5, max_decays=1, minimize=False)
    assert [schedule.update(v) for v in (10.0, 12.0, 11.0, 12.0)] == ["improved", "improved", "wait", "decayed"]


def test_shortest_run_is_what_a_run_that_never_improves_takes():
    for patience, max_decays in ((15, 10), (3, 0), (1, 2)):
        schedule = PlateauSchedule(lr=1.0, patience=patience, factor=0.5, max_decays=max_decays)
        epochs = 1
        while schedule.update(1.0) != "stop":
            epochs += 1
        assert epochs == shortest_run(patience, max_decays)
    assert shortest_run(15, 10) == 177  # the official recipe
