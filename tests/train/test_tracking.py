"""The MLflow glue a service needs beyond training: ending the runs of a training whose process died."""

from __future__ import annotations

from mockvox.train.tracking import Tracker


def test_end_runs_ends_a_dead_trainings_run_and_its_stage_runs(tmp_path) -> None:
    tracker = Tracker(f"sqlite:///{tmp_path}/mlflow.db", "t", str(tmp_path / "artifacts"))
    parent = tracker.start_run("voice")
    stages = [tracker.start_run(s, parent=parent) for s in ("sovits", "gpt")]
    tracker.end_run(stages[0])  # this stage had finished before the process died
    assert tracker.end_runs(parent) == 2
    status = {r: tracker.client.get_run(r).info.status for r in (parent, *stages)}
    assert status == {parent: "KILLED", stages[0]: "FINISHED", stages[1]: "KILLED"}
    assert tracker.end_runs(parent) == 0  # nothing left running
