"""The console answers only its own page: Host names, Origin/Referer and JSON body on actions, the
token beyond loopback, bounded jobs, a queue instead of a lock, and cancellation (a chaos job in its
worker process is interrupted and rolls back)."""

from __future__ import annotations

import json
import os
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from payctl.console.actions import in_worker
from payctl.console.app import ConsoleSources, create_app
from payctl.console.jobs import ChaosRequest, JobConflict, JobRunner, LoadRequest, parse_request
from payctl.console.settings import ConsoleLimits, Guard, console_env, token_file
from payctl.errors import PayctlError, UsageError
from payctl.stack.topology import Topology
from tests.console.fakes import FakeBackend, FakeMetrics, fake_chaos, fake_load, load_until_cancelled

PORT = 18091
HOME = f"127.0.0.1:{PORT}"
SMOKE = {"kind": "load", "scenario": "smoke", "rate": 5, "duration": "3s"}
REPO = Path(__file__).resolve().parents[2]


def sources(tmp_path: Path, runner: JobRunner | None = None) -> ConsoleSources:
    return ConsoleSources(backend=FakeBackend(), metrics=FakeMetrics(), reports=tmp_path,
                          jobs=runner or JobRunner(fake_load(tmp_path, 0.05), fake_chaos(tmp_path)),
                          scenarios=lambda: ["smoke"], experiments=lambda: [])


def client(src: ConsoleSources, guard: Guard | None = None) -> FlaskClient:
    return create_app(src, guard or Guard(port=PORT, hosts=("10.20.0.2",))).test_client()


def post(c: FlaskClient, path: str, body: Any = None, host: str = HOME, **headers: str) -> Any:
    headers.setdefault("Origin", f"http://{host}")
    return c.post(path, data=json.dumps(SMOKE if body is None else body), base_url=f"http://{host}",
                  headers={"Content-Type": "application/json", **headers})


# -- Host ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["rebound.example:18091", "127.0.0.1", "127.0.0.1:8080", "localhost:1809",
                                  "10.20.0.3:18091", ""])
@pytest.mark.parametrize("path", ["/", "/health", "/api/status", "/api/jobs", "/api/config", "/static/console.js",
                                  "/reports/x.html", "/nope"])
def test_any_other_host_gets_421_on_every_route(tmp_path: Path, host: str, path: str) -> None:
    resp = client(sources(tmp_path)).get(path, headers={"Host": host})
    assert resp.status_code == 421
    assert "host" in resp.get_json()["error"]


def test_a_rebound_name_cannot_start_a_job(tmp_path: Path) -> None:
    src = sources(tmp_path)
    resp = post(client(src), "/api/jobs", host="rebound.example:18091")
    assert resp.status_code == 421
    assert src.jobs.jobs() == []


@pytest.mark.parametrize("host", ["127.0.0.1:18091", "localhost:18091", "LOCALHOST:18091", "[::1]:18091",
                                  "10.20.0.2:18091"])
def test_the_consoles_own_names_are_served(tmp_path: Path, host: str) -> None:
    c = client(sources(tmp_path))
    assert c.get("/health", headers={"Host": host}).get_json() == {"status": "UP"}
    assert post(c, "/api/jobs", host=host.lower()).status_code == 202


def test_an_ipv6_configured_host_is_matched_in_brackets() -> None:
    assert "[fd00::2]:18091" in Guard(port=PORT, hosts=("fd00::2",)).allowed_hosts


# -- Origin, Referer, Content-Type ---------------------------------------------------------------
@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"}, {"Origin": "null"},
                                     {"Origin": "http://127.0.0.1:9999"}, {"Origin": "https://127.0.0.1:18091"},
                                     {"Origin": "", "Referer": "http://evil.example/page.html"}])
def test_actions_from_another_origin_are_refused(tmp_path: Path, headers: dict[str, str]) -> None:
    src = sources(tmp_path)
    c = client(src)
    if headers.get("Origin") == "":
        del headers["Origin"]
        resp = c.post("/api/jobs", data=json.dumps(SMOKE), base_url=f"http://{HOME}",
                      headers={"Content-Type": "application/json", **headers})
    else:
        resp = post(c, "/api/jobs", **headers)
    assert resp.status_code == 403
    assert resp.get_json()["error"].split(":")[0] in ("origin", "referer")
    assert src.jobs.jobs() == []


def test_own_referer_without_origin_and_no_origin_at_all_are_accepted(tmp_path: Path) -> None:
    c = client(sources(tmp_path))
    for headers in ({"Referer": f"http://{HOME}/"}, {}):
        resp = c.post("/api/jobs", data=json.dumps(SMOKE), base_url=f"http://{HOME}",
                      headers={"Content-Type": "application/json", **headers})
        assert resp.status_code == 202


@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "text/plain", "multipart/form-data; b=x",
                                   None])
def test_actions_need_a_json_body(tmp_path: Path, ctype: str | None) -> None:
    src = sources(tmp_path)
    headers = {"Origin": f"http://{HOME}", **({"Content-Type": ctype} if ctype else {})}
    resp = client(src).post("/api/jobs", data=json.dumps(SMOKE), base_url=f"http://{HOME}", headers=headers)
    assert resp.status_code == 415 and resp.get_json()["error"].startswith("content-type")
    assert src.jobs.jobs() == []


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_every_state_changing_method_is_checked(tmp_path: Path, method: str) -> None:
    resp = client(sources(tmp_path)).open("/api/jobs", method=method, base_url=f"http://{HOME}",
                                          headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403


# -- token --------------------------------------------------------------------------------------
def test_a_console_with_a_token_needs_it_for_everything_but_its_page(tmp_path: Path) -> None:
    """Beyond loopback, anyone on the network reaches it: reading the stack's state, reports and
    metrics needs the token as acting does. The page, its files, /health and /api/config (which
    tells the page to ask for the token) stay open."""
    src = sources(tmp_path)
    c = client(src, Guard(port=PORT, hosts=("10.20.0.2",), token="s3cret-token"))
    assert c.get("/api/config", base_url=f"http://{HOME}").get_json()["token_required"] is True
    assert c.get("/health", base_url=f"http://{HOME}").status_code == 200
    assert c.get("/", base_url=f"http://{HOME}").status_code == 200
    for path in ("/api/status", "/api/jobs", "/api/runs", "/api/catalog", "/api/charts"):
        refused = c.get(path, base_url=f"http://{HOME}")
        assert refused.status_code == 401 and refused.get_json()["error"].startswith("authorization"), path
        assert c.get(path, base_url=f"http://{HOME}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/status", base_url=f"http://{HOME}",
                 headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert post(c, "/api/jobs").status_code == 401
    assert post(c, "/api/jobs", Authorization="Bearer wrong").status_code == 401
    assert post(c, "/api/jobs", Authorization="s3cret-token").status_code == 401
    assert src.jobs.jobs() == []
    assert post(c, "/api/jobs", Authorization="Bearer s3cret-token").status_code == 202
    page = c.get("/", base_url=f"http://{HOME}").get_data(as_text=True)
    assert "s3cret-token" not in page


def write_topology(folder: Path, **fields: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "topology.json"
    path.write_text(Topology.model_validate(fields).model_dump_json())
    return path


def test_loopback_console_needs_no_token(tmp_path: Path) -> None:
    state = tmp_path / ".payctl"
    env = console_env({"PAYCTL_CONSOLE_TOPOLOGY": str(write_topology(state)), "PAYCTL_CONSOLE_STATE_DIR": str(state)})
    assert env.guard().token is None
    assert not token_file(state).exists()


def test_console_beyond_loopback_makes_a_private_token(tmp_path: Path) -> None:
    state = tmp_path / ".payctl"
    env = console_env({"PAYCTL_CONSOLE_TOPOLOGY": str(write_topology(state, shared_host="10.20.0.2")),
                       "PAYCTL_CONSOLE_STATE_DIR": str(state)})
    guard = env.guard()
    path = token_file(state)
    assert guard.token and path.read_text().strip() == guard.token and len(guard.token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert env.guard().token == guard.token  # kept across restarts
    assert "10.20.0.2:8090" in guard.allowed_hosts


def test_console_env_anchors_a_relative_state_dir_and_refuses_relative_paths(tmp_path: Path) -> None:
    state = tmp_path / ".payctl"
    topo_file = write_topology(state)  # state_dir ".payctl", as a fresh checkout writes it
    env = console_env({"PAYCTL_CONSOLE_TOPOLOGY": str(topo_file)})
    assert env.state_dir == state and env.topology.state_path() == state
    assert env.reports == tmp_path / "reports"
    for var, value in (("PAYCTL_CONSOLE_STATE_DIR", ".payctl"), ("PAYCTL_CONSOLE_REPORTS", "reports")):
        with pytest.raises(UsageError, match=rf"^{var}"):
            console_env({"PAYCTL_CONSOLE_TOPOLOGY": str(topo_file), var: value})
    with pytest.raises(UsageError, match=r"^PAYCTL_CONSOLE_TOPOLOGY"):
        console_env({"PAYCTL_CONSOLE_TOPOLOGY": "topology.json"})


# -- limits -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "field"), [
    ({**SMOKE, "rate": 1001}, "rate"),
    ({**SMOKE, "duration": "31m"}, "duration"),
    ({**SMOKE, "duration": "9999h"}, "duration"),
    ({"kind": "chaos", "experiment": "kafka-outage", "confirm": True, "vars": {"load_rate": 5000}}, "vars.load_rate"),
    ({"kind": "chaos", "experiment": "kafka-outage", "confirm": True, "vars": {"drain_timeout_s": 36000}},
     "vars.drain_timeout_s"),
])
def test_jobs_are_bounded_by_the_limits(tmp_path: Path, body: dict[str, Any], field: str) -> None:
    src = sources(tmp_path)
    resp = post(client(src), "/api/jobs", body)
    assert resp.status_code == 400 and resp.get_json()["error"].startswith(f"{field}:")
    assert src.jobs.jobs() == []


def test_limits_are_settings() -> None:
    limits = ConsoleLimits.from_env({"PAYCTL_CONSOLE_MAX_RATE": "50", "PAYCTL_CONSOLE_MAX_DURATION_S": "60"})
    assert isinstance(parse_request({**SMOKE, "rate": 50, "duration": "1m"}, limits), LoadRequest)
    with pytest.raises(UsageError, match=r"^rate"):
        parse_request({**SMOKE, "rate": 51}, limits)
    with pytest.raises(UsageError, match=r"^duration"):
        parse_request({**SMOKE, "duration": "61s"}, limits)
    assert isinstance(parse_request({**SMOKE, "rate": 1000, "duration": "30m"}), LoadRequest)
    with pytest.raises(UsageError, match=r"^PAYCTL_CONSOLE_MAX_RATE"):
        ConsoleLimits.from_env({"PAYCTL_CONSOLE_MAX_RATE": "0"})


# -- queue and cancel ---------------------------------------------------------------------------
def test_jobs_queue_behind_the_running_one_and_the_queue_is_bounded(tmp_path: Path) -> None:
    runner = JobRunner(load_until_cancelled(), fake_chaos(tmp_path), limits=ConsoleLimits(queue=2))
    src = sources(tmp_path, runner)
    c = client(src)
    ids = [post(c, "/api/jobs").get_json()["id"] for _ in range(3)]
    full = post(c, "/api/jobs")
    assert full.status_code == 409 and "queue" in full.get_json()["error"]
    states = {j["id"]: j["status"] for j in c.get("/api/jobs", base_url=f"http://{HOME}").get_json()}
    assert [states[i] for i in ids] == ["running", "queued", "queued"]
    # cancelling a queued job drops it; the running one is stopped; the last one then runs
    assert post(c, f"/api/jobs/{ids[1]}/cancel", {}).get_json()["status"] == "cancelled"
    assert post(c, f"/api/jobs/{ids[0]}/cancel", {}).status_code == 202
    deadline = time.monotonic() + 5
    while runner.get(ids[2])["status"] != "running" and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.02)
    assert runner.get(ids[0])["status"] == "cancelled"  # type: ignore[index]
    assert runner.get(ids[2])["status"] == "running"  # type: ignore[index]
    assert post(c, f"/api/jobs/{ids[2]}/cancel", {}).status_code == 202
    assert runner.wait_idle(5)
    again = post(c, f"/api/jobs/{ids[2]}/cancel", {})
    assert again.status_code == 409 and "already ended" in again.get_json()["error"]
    assert post(c, "/api/jobs/job-99/cancel", {}).status_code == 404


def test_cancel_is_an_action_like_the_others(tmp_path: Path) -> None:
    runner = JobRunner(load_until_cancelled(), fake_chaos(tmp_path))
    c = client(sources(tmp_path, runner))
    job = post(c, "/api/jobs").get_json()["id"]
    assert post(c, f"/api/jobs/{job}/cancel", {}, Origin="http://evil.example").status_code == 403
    assert c.post(f"/api/jobs/{job}/cancel", base_url=f"http://{HOME}").status_code == 415
    assert runner.get(job)["status"] == "running"  # type: ignore[index]
    runner.cancel(job)
    assert runner.wait_idle(5)


def test_a_job_past_its_budget_is_cancelled(tmp_path: Path) -> None:
    runner = JobRunner(load_until_cancelled(), fake_chaos(tmp_path), grace_s=0.3)
    job = runner.submit(LoadRequest(scenario="smoke", duration="1s"))
    assert runner.wait_idle(5)
    done = runner.get(job.id)
    assert done is not None and done["status"] == "cancelled" and "budget" in done["log"][-2]


def test_cancelling_a_chaos_job_interrupts_its_worker_which_rolls_back(tmp_path: Path) -> None:
    """The real path: the job runs in a worker process under the real chaos engine; cancel sends it
    SIGINT; the engine stops the load and runs its rollback, and the job ends long before its wait."""
    reports = tmp_path / "reports"
    reports.mkdir()
    environ = {"PAYCTL_CONSOLE_REPORTS": str(reports),
               "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform"), os.environ.get("PYTHONPATH", "")])}
    chaos = in_worker("chaos", environ, tmp_path, entry="tests.console.fakes:chaos_in_worker")
    runner = JobRunner(load_until_cancelled(), chaos)
    job = runner.submit(ChaosRequest(experiment="outage-under-load", confirm=True))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = runner.get(job.id)
        assert current is not None
        if any(line.startswith("running method: wait") for line in current["log"]):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the experiment never reached its wait: {runner.get(job.id)}")
    started = time.monotonic()
    runner.cancel(job.id)
    assert runner.wait_idle(20)
    assert time.monotonic() - started < 15  # the 60 s wait was cut short
    done = runner.get(job.id)
    assert done is not None and done["status"] == "cancelled", done
    journal = json.loads((reports / "journal.json").read_text())
    assert journal["status"] == "interrupted"
    assert [r["type"] for r in journal["rollbacks"]] == ["start"]
    assert all(r["status"] == "succeeded" for r in journal["rollbacks"])
    lines = (reports / "driver.log").read_text().splitlines()
    assert lines.index("act start:kafka") > lines.index("act stop:kafka")
    assert "load bg stopped" in lines and lines[-1] == "closed"
    # the undo journal: the stop's entry settled by the rollback, so nothing is left for `chaos recover`
    assert [(e["fault"], e["status"]) for e in journal["undo"]] == [("stop kafka", "done")], journal["undo"]
    assert not (reports / "undo.json").exists()


def test_a_cancelled_worker_before_its_job_ends_reports_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    environ = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform"), os.environ.get("PYTHONPATH", "")]),
               "PAYCTL_CONSOLE_REPORTS": str(tmp_path)}
    chaos = in_worker("chaos", environ, tmp_path, entry="tests.console.fakes:chaos_in_worker")
    with pytest.raises(Exception, match="cancel"):
        chaos(ChaosRequest(experiment="x", confirm=True), lambda _u: None, cancel)


def test_cancel_reaches_the_worker_of_a_console_started_ignoring_ctrl_c(tmp_path: Path) -> None:
    """A console started in the background by a script (or under nohup) has SIGINT ignored, and
    its workers would inherit that: cancel, which is SIGINT, would then never reach the job. The
    worker takes SIGINT back, since it is the console's cancel, not a terminal's Ctrl-C."""
    cancel = threading.Event()
    cancel.set()
    environ = {"PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "platform"), os.environ.get("PYTHONPATH", "")]),
               "PAYCTL_CONSOLE_REPORTS": str(tmp_path)}
    chaos = in_worker("chaos", environ, tmp_path, entry="tests.console.fakes:chaos_in_worker")
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # the child inherits it, as from such a console
    try:
        with pytest.raises(Exception, match="cancel"):
            chaos(ChaosRequest(experiment="x", confirm=True), lambda _u: None, cancel)
    finally:
        signal.signal(signal.SIGINT, previous)


def test_job_conflicts_are_payctl_errors() -> None:
    assert issubclass(JobConflict, PayctlError)


# -- payctl console --token -----------------------------------------------------------------------
def test_payctl_console_prints_the_token_beyond_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from payctl.cli.app import create_app as cli_app
    from payctl.console.settings import ensure_token

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAYCTL_CONFIG", raising=False)
    result = CliRunner().invoke(cli_app(), ["console", "--token"])
    assert result.exit_code == 0 and "no token" in result.output
    (tmp_path / "stack.toml").write_text('shared_host = "10.20.0.2"\n')
    result = CliRunner().invoke(cli_app(), ["console", "--token"])
    assert result.exit_code == 1 and "no token yet" in result.output
    token = ensure_token(token_file(tmp_path / ".payctl"))
    result = CliRunner().invoke(cli_app(), ["console", "--token"])
    assert result.exit_code == 0 and result.output.strip() == token
