"""A wheel of the project, installed into a throwaway venv and run from outside the checkout, finds
its k6 scenarios and chaos experiments as package data (not via the checkout).

The venv is isolated (no --system-site-packages); the wheel goes in with --no-deps and a .pth file
points at this interpreter's site-packages for the dependencies, so the test stays fast and offline.
The .pth only adds a path: the editable install's own .pth/finder there is never activated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the build needs; copied so the build never writes build/ or *.egg-info into the checkout.
SOURCES = ("pyproject.toml", "payctl", "platform/payflow", "scenarios")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    payctl: Path


def _run(cmd: list[str | Path], cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, (f"{cmd} exited {result.returncode}\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    for rel in SOURCES:
        origin = ROOT / rel
        if origin.is_dir():
            shutil.copytree(origin, src / rel, ignore=IGNORE)
        else:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, src / rel)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src], cwd=tmp, env=_clean_env())
    (wheel,) = dist.glob("payctl-*.whl")

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel],
         cwd=tmp, env=_clean_env())
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp, env=_clean_env()).stdout.strip())
    # dependencies from this interpreter's site-packages, appended after the venv's own
    (site / "zz_payctl_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    yield Installed(env_dir, python, env_dir / "bin" / "payctl")


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def test_payctl_is_imported_from_the_wheel(installed: Installed, tmp_path: Path):
    out = _run([installed.python, "-c", "import payctl, payflow; print(payctl.__file__); print(payflow.__file__)"],
               cwd=tmp_path, env=_clean_env()).stdout.split()
    for module_file in map(Path, out):
        assert _inside(module_file, installed.venv), module_file
        assert not _inside(module_file, ROOT), module_file


def test_chaos_list_finds_the_shipped_experiments(installed: Installed, tmp_path: Path):
    result = _run([installed.payctl, "chaos", "list", "--json"], cwd=tmp_path, env=_clean_env())
    items = json.loads(result.stdout)
    assert [i["name"] for i in items] == sorted(p.stem for p in (ROOT / "scenarios" / "chaos").glob("*.yaml"))
    assert all(_inside(Path(i["file"]), installed.venv) for i in items)


def test_loadtest_dry_run_uses_the_shipped_script(installed: Installed, tmp_path: Path):
    result = _run([installed.payctl, "loadtest", "run", "authorize", "--dry-run", "--json"], cwd=tmp_path,
                  env=_clean_env())
    plan = json.loads(result.stdout)
    script = Path(plan["script"])
    assert script.is_file() and script.name == "authorize.js"
    assert _inside(script, installed.venv) and not _inside(script, ROOT)
    # the scripts import their helpers: those ship too
    assert (script.parent / "lib" / "common.js").is_file()
    assert plan["command"][-1] == plan["script"]
    assert not (tmp_path / "reports").exists()


def test_templates_ship_with_the_wheel(installed: Installed, tmp_path: Path):
    code = ("import json; from importlib import resources; t = resources.files('payctl') / 'templates'; "
            "print(json.dumps([p.name for p in t.iterdir()]))")
    names = json.loads(_run([installed.python, "-c", code], cwd=tmp_path, env=_clean_env()).stdout)
    assert {"503.http", "haproxy.cfg.j2", "loadtest_report.html.j2"} <= set(names)
