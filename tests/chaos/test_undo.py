"""The undo journal: an entry on disk before every fault, settled by what reverts it, reverted by the
engine after the rollbacks, and recovery planning + execution for runs that were killed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payctl.chaos import engine
from payctl.chaos.model import Experiment
from payctl.chaos.recover import execute_recovery
from payctl.chaos.undo import UndoLog, describe, plan_recovery, read_runs, undo_for
from tests.chaos.test_engine import FakeDriver


@pytest.mark.parametrize(
    ("action", "undo"),
    [
        ({"type": "stop", "service": "kafka"}, {"type": "start", "service": "kafka"}),
        ({"type": "kill", "service": "ledger-vm1"}, {"type": "start", "service": "ledger-vm1"}),
        ({"type": "pause", "service": "shard2"}, {"type": "resume", "service": "shard2"}),
        ({"type": "arm_fault", "service": "relay-vm1", "point": "crash-after-publish"},
         {"type": "disarm_fault", "service": "relay-vm1", "point": "crash-after-publish"}),
        ({"type": "start", "service": "kafka"}, None),
        ({"type": "resume", "service": "shard2"}, None),
        ({"type": "inject_poison", "id": "p", "topic": "payment.authorized", "count": 3}, None),
        ({"type": "lose_logs"}, None),  # nothing to revert: the topics are created again at once
        ({"type": "wait", "seconds": 1}, None),
    ],
)
def test_what_reverts_each_fault(action, undo):
    assert undo_for(action) == undo


def test_describe():
    assert describe({"type": "resume", "service": "shard2", "id": "x"}) == "resume shard2"
    assert describe({"type": "disarm_fault", "service": "relay-vm1", "point": "crash-after-publish"}) == \
        "disarm_fault relay-vm1 crash-after-publish"


class RecordingDriver(FakeDriver):
    """Checks that the undo entry is on disk by the time the fault is injected."""

    def __init__(self, log_path: Path, **kw):
        super().__init__(**kw)
        self.log_path = log_path
        self.on_disk_at_fault: list[list[str]] = []

    def act(self, action, journal):
        if action.type in ("stop", "pause", "kill", "arm_fault"):
            data = json.loads(self.log_path.read_text())
            self.on_disk_at_fault.append([e["fault"] for e in data["entries"] if e["status"] == "pending"])
        return super().act(action, journal)


def shard_hang(**extra) -> Experiment:
    data = {"title": "t",
            "method": [{"id": "hang", "type": "pause", "service": "shard2"},
                       {"type": "arm_fault", "service": "relay-vm1", "point": "crash-after-publish"},
                       {"id": "back", "type": "resume", "service": "shard2"}]}
    data.update(extra)
    return Experiment.model_validate(data)


def test_entry_is_on_disk_before_the_fault_and_settled_by_the_revert(tmp_path):
    path = tmp_path / "runs" / "r1.json"
    log = UndoLog(run="r1", experiment="shard-hang", path=path)
    driver = RecordingDriver(path)
    journal = engine.run(shard_hang(), driver, undo=log)
    assert journal.status == "completed"
    assert driver.on_disk_at_fault == [["pause shard2"], ["pause shard2", "arm_fault relay-vm1 crash-after-publish"]]
    by = {e["fault"]: (e["status"], e["by"]) for e in journal.undo}
    assert by["pause shard2"] == ("done", "method[2]")
    # nothing in the experiment disarmed the hook: the engine reverted it after the rollbacks
    assert by["arm_fault relay-vm1 crash-after-publish"] == ("done", "undo")
    assert journal.rollbacks[-1].label == "undo arm_fault relay-vm1 crash-after-publish"
    assert driver.actions[-1] == "disarm_fault:relay-vm1"
    assert not path.exists()  # finished with nothing left: forgotten


def test_a_failed_revert_stays_on_disk_for_recover(tmp_path):
    path = tmp_path / "r2.json"
    driver = FakeDriver(fail_on="shard2")  # every shard2 action fails, the resume included
    journal = engine.run(shard_hang(), driver, undo=UndoLog(run="r2", experiment="x", path=path))
    assert journal.status == "deviated"
    data = json.loads(path.read_text())
    assert data["finished"] is not None
    assert [(e["fault"], e["status"]) for e in data["entries"]] == [("pause shard2", "failed")]


def killed_run(folder: Path, run: str, pid: int, faults: list[dict], started: float = 1.0) -> UndoLog:
    log = UndoLog(run=run, experiment="x", path=folder / f"{run}.json", pid=pid, started=started)
    for fault in faults:
        log.record(fault)
    return log


def test_plan_reverts_killed_and_failed_runs_newest_first_and_leaves_live_runs_alone(tmp_path):
    killed_run(tmp_path, "old", 111, [{"type": "stop", "service": "kafka"},
                                      {"type": "pause", "service": "shard2"}], started=1)
    live = killed_run(tmp_path, "live", 222, [{"type": "pause", "service": "kafka"}], started=2)
    done = killed_run(tmp_path, "done", 333, [{"type": "kill", "service": "ingest-vm1"}], started=3)
    done.settled_by({"type": "start", "service": "ingest-vm1"}, "method[1]")
    (tmp_path / "junk.json").write_text("{not json")
    logs, problems = read_runs(tmp_path)
    assert len(logs) == 3 and len(problems) == 1 and "junk.json" in problems[0]
    plan = plan_recovery(logs, alive=lambda pid: pid == 222)
    assert [(log.run, e.fault) for log, e in plan.steps] == [("old", "pause shard2"), ("old", "stop kafka")]
    assert [log.run for log in plan.in_progress] == [live.run]
    assert plan.as_dict()["steps"][0] == {"run": "old", "fault": "pause shard2", "undo": "resume shard2"}
    # our own pid (recover running inside a run's process) is never "in progress"
    assert len(plan_recovery(logs, alive=lambda pid: pid == 222, own_pid=222).steps) == 3


def test_read_runs_of_a_missing_folder_is_empty(tmp_path):
    assert read_runs(tmp_path / "nope") == ([], [])


def test_recovery_reverts_persists_and_checks_health(tmp_path):
    killed_run(tmp_path, "k", 999_999, [{"type": "pause", "service": "shard2"},
                                        {"type": "arm_fault", "service": "relay-vm1", "point": "crash-after-publish"}])
    logs, _ = read_runs(tmp_path)
    health = iter([{"shard2": False, "kafka": True}, {"shard2": True, "kafka": True}])
    driver = FakeDriver(probes={"service_healthy": lambda: next(health)})
    result = execute_recovery(plan_recovery(logs, alive=lambda _pid: False), driver, timeout_s=5, interval_s=0.01)
    assert result["ok"] and result["healthy"] and result["unhealthy"] == []
    assert [s["undo"] for s in result["reverted"]] == ["disarm_fault relay-vm1 crash-after-publish",
                                                       "resume shard2"]
    assert driver.actions == ["disarm_fault:relay-vm1", "resume:shard2"]
    assert read_runs(tmp_path) == ([], [])  # everything reverted: the log is gone


def test_recovery_reports_unhealthy_and_failed_reverts(tmp_path):
    killed_run(tmp_path, "k", 999_999, [{"type": "stop", "service": "kafka"}])
    logs, _ = read_runs(tmp_path)
    driver = FakeDriver(probes={"service_healthy": {"kafka": False, "shard1": True}}, fail_on="kafka")
    result = execute_recovery(plan_recovery(logs, alive=lambda _pid: False), driver, timeout_s=0.05,
                              interval_s=0.01)
    assert not result["ok"] and not result["healthy"] and result["unhealthy"] == ["kafka"]
    assert result["reverted"][0]["status"] == "failed" and "boom" in result["reverted"][0]["error"]
    left, _ = read_runs(tmp_path)
    assert [(e.fault, e.status) for e in left[0].entries] == [("stop kafka", "failed")]  # still there


def test_nothing_to_recover_is_just_a_health_check(tmp_path):
    result = execute_recovery(plan_recovery([], alive=lambda _pid: False),
                              FakeDriver(probes={"service_healthy": {"a": True}}), timeout_s=0)
    assert result["ok"] and result["reverted"] == []


# An undo log exactly as the code before the kinds registry wrote it: `chaos recover` must still
# read it and revert each entry through today's kinds.
OLD_FORMAT = """{
  "schema": "payctl.chaos.undo/v1", "run": "chaos-20240101-120000-shard-hang-4711",
  "experiment": "shard-hang", "pid": 999999, "started": 1704110400.0, "finished": null,
  "entries": [
    {"seq": 0, "fault": "kill ingest-vm1", "undo": {"type": "start", "service": "ingest-vm1"},
     "recorded_at": 1704110401.0, "status": "done", "settled_at": 1704110402.0, "by": "method[2]", "error": null},
    {"seq": 1, "fault": "pause shard2", "undo": {"type": "resume", "service": "shard2"},
     "recorded_at": 1704110403.0, "status": "pending", "settled_at": null, "by": null, "error": null},
    {"seq": 2, "fault": "arm_fault relay-vm1 crash-after-publish",
     "undo": {"type": "disarm_fault", "service": "relay-vm1", "point": "crash-after-publish"},
     "recorded_at": 1704110404.0, "status": "pending", "settled_at": null, "by": null, "error": null},
    {"seq": 3, "fault": "partition vm2 kafka", "undo": {"type": "heal_link", "source": "vm2", "target": "kafka"},
     "recorded_at": 1704110405.0, "status": "failed", "settled_at": 1704110406.0, "by": "undo",
     "error": "ActivityFailed: boom"},
    {"seq": 4, "fault": "stop kafka", "undo": {"type": "start", "service": "kafka"},
     "recorded_at": 1704110407.0, "status": "pending", "settled_at": null, "by": null, "error": null}
  ]
}"""


def test_an_undo_log_written_by_the_old_code_still_recovers(tmp_path):
    (tmp_path / "chaos-20240101-120000-shard-hang-4711.json").write_text(OLD_FORMAT)
    logs, problems = read_runs(tmp_path)
    assert problems == [] and len(logs) == 1
    driver = FakeDriver(probes={"service_healthy": {"kafka": True}})
    result = execute_recovery(plan_recovery(logs, alive=lambda _pid: False), driver, timeout_s=0)
    assert result["ok"]
    assert [s["undo"] for s in result["reverted"]] == ["start kafka", "heal_link vm2 kafka",
                                                       "disarm_fault relay-vm1 crash-after-publish", "resume shard2"]
    assert driver.actions == ["start:kafka", "heal_link:", "disarm_fault:relay-vm1", "resume:shard2"]
    assert read_runs(tmp_path) == ([], [])
