"""payctl deletes only what it made: a state folder carrying its marker, never the root, the home
folder, the current folder, the checkout, the folder holding stack.toml or an ancestor of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from payctl.errors import UsageError
from payctl.stack import owned
from payctl.stack.local import LocalBackend
from payctl.stack.topology import Topology


def _sentinel(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    keep = folder / "precious.txt"
    keep.write_text("not payctl's")
    return keep


def test_purge_refuses_a_folder_payctl_did_not_make(tmp_path: Path) -> None:
    keep = _sentinel(tmp_path / "mine")
    backend = LocalBackend(Topology(state_dir=tmp_path / "mine"))
    with pytest.raises(UsageError, match="marker"):
        backend.down(purge=True)
    assert keep.read_text() == "not payctl's"


def test_up_refuses_a_folder_with_someone_elses_files(tmp_path: Path) -> None:
    keep = _sentinel(tmp_path / "src")
    with pytest.raises(UsageError, match="did not make"):
        owned.claim(tmp_path / "src")
    assert keep.exists() and not (tmp_path / "src" / owned.MARKER).exists()


def test_a_folder_payctl_made_is_deleted(tmp_path: Path) -> None:
    state = tmp_path / "state"
    owned.claim(state)
    (state / "logs").mkdir()
    assert owned.delete(state) and not state.exists()
    assert not owned.delete(state)  # nothing left: not an error


@pytest.mark.parametrize("where", ["/", "home", "cwd", "cwd-parent", "checkout"])
def test_protected_places_are_refused_even_with_a_marker(where: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    folder = {"/": Path("/"), "home": Path.home(), "cwd": inner, "cwd-parent": tmp_path / "a",
              "checkout": owned.CHECKOUT or Path("/")}[where]
    assert owned.refusal(folder) is not None
    with pytest.raises(UsageError):
        owned.claim(folder)


def test_a_symlink_to_a_state_folder_is_not_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    owned.claim(real)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UsageError):
        owned.delete(link)
    assert real.exists()


@pytest.mark.parametrize("state_dir", ["", ".", "..", "../.."])
def test_down_purge_with_a_state_dir_over_the_checkout_exits_2_and_deletes_nothing(tmp_path: Path,
                                                                                  state_dir: str) -> None:
    project = tmp_path / "outer" / "project"
    keep = [_sentinel(tmp_path), _sentinel(tmp_path / "outer"), _sentinel(project)]
    (project / "stack.toml").write_text(f'state_dir = "{state_dir}"\n')
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "down", "--purge"], cwd=project,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert all(k.exists() for k in keep)


@pytest.mark.parametrize(("args", "where"), [
    (["loadtest", "history", "--reports", "/"], "/"),
    (["loadtest", "history", "--reports", "~"], "~"),
    (["loadtest", "history", "--reports", ".."], ".."),
    (["compose", "render", "--out", ".."], ".."),
    (["loadtest", "trend", "--out", "/"], "/"),
])
def test_reports_and_outputs_never_go_into_the_root_home_or_an_ancestor(tmp_path: Path, args: list[str],
                                                                      where: str) -> None:
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", *args], cwd=inner, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "folder of their own" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_reports_in_the_current_folder_are_fine(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "payctl.cli.app", "loadtest", "history", "--reports", "reports",
                             "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
