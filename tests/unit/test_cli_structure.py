"""The CLI's shape: one registration style, options defined once, state in ctx.obj, lazy consoles,
and `loadtest run --dry-run` that plans without touching k6 or the stack."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from payctl.errors import EnvironmentProblem
from payctl.stack.compose import compose_file

CLI = Path(__file__).resolve().parents[2] / "payctl" / "cli"
CMD_MODULES = sorted(p.stem for p in CLI.glob("*_cmds.py"))


def payctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-m", "payctl.cli.app", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env=env)


@pytest.mark.parametrize("name", CMD_MODULES)
def test_every_command_module_registers_the_same_way(name: str):
    module = importlib.import_module(f"payctl.cli.{name}")
    assert callable(module.register)
    tree = ast.parse((CLI / f"{name}.py").read_text())
    # nothing registered at import time: no decorated commands, no module-level Typer
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            assert not node.decorator_list, f"{name}.{node.name} is registered by a decorator"
        if isinstance(node, ast.Assign | ast.AnnAssign):
            assert "typer.Typer(" not in ast.unparse(node), f"{name} builds a Typer at import time"


def test_shared_options_are_defined_once():
    aliases = [(p.name, ast.unparse(node.targets[0])) for p in sorted(CLI.glob("*.py"))
               for node in ast.parse(p.read_text()).body
               if isinstance(node, ast.Assign) and ast.unparse(node.value).startswith("Annotated[")]
    assert ("options.py", "JsonOpt") in aliases
    assert all(file == "options.py" for file, _ in aliases), aliases


def test_consoles_are_built_on_first_use():
    code = ("from payctl.cli import app, output\n"
            "assert output.console.cache_info().currsize == 0\n"
            "assert output.err_console.cache_info().currsize == 0\n"
            "assert output.console() is output.console()\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_config_reaches_nested_commands_through_the_context(tmp_path: Path):
    (tmp_path / "other.toml").write_text("gateway_port = 9999\n")
    result = payctl("--config", str(tmp_path / "other.toml"), "loadtest", "run", "smoke", "--dry-run", "--json",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["base_url"] == "http://127.0.0.1:9999/api"


def test_loadtest_dry_run_prints_the_plan_as_json(tmp_path: Path):
    result = payctl("loadtest", "run", "authorize", "--dry-run", "--json", "--rate", "7", "--duration", "1m",
                    "--vus", "3", "--reports", str(tmp_path / "reports"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True
    assert (plan["scenario"], plan["rate"], plan["duration"], plan["duration_s"], plan["vus"]) == (
        "authorize", 7, "1m", 60.0, 3)
    assert plan["base_url"] == "http://127.0.0.1:8080/api"
    assert Path(plan["script"]).name == "authorize.js" and Path(plan["script"]).is_file()
    command = plan["command"]
    assert command[1] == "run" and command[-1] == plan["script"] and "RATE=7" in command
    assert not (tmp_path / "reports").exists()  # nothing ran, nothing written


def test_loadtest_dry_run_table_and_validation(tmp_path: Path):
    result = payctl("loadtest", "run", "smoke", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0 and "dry run" in result.stdout and "smoke.js" in result.stdout
    bad = payctl("loadtest", "run", "smoke", "--dry-run", "--base-url", "http://10.0.0.1/api", cwd=tmp_path)
    assert bad.returncode == 2 and "not loopback" in bad.stderr and "Traceback" not in bad.stderr


def test_compose_file_is_looked_up_in_the_working_directory(tmp_path: Path):
    with pytest.raises(EnvironmentProblem, match=r"compose\.yml in the working directory"):
        compose_file(tmp_path)
    (tmp_path / "compose.yml").write_text("services: {}\n")
    assert compose_file(tmp_path) == tmp_path / "compose.yml"
