"""README and program agree: every row of the README's command table names commands that exist,
options each of them takes, and the defaults they really have (`[--rate 20]` is the default of
--rate). Read from the click command tree typer builds, not from help text (which wraps)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer

from payctl.cli.app import create_app

README = Path(__file__).resolve().parents[2] / "README.md"
# Words the table writes for a value the user picks, not a default.
PLACEHOLDERS = {"URL", "DIR", "N", "S", "R", "B", "VM", "MS", "SECONDS", "PATH", "FILE", "CURRENT", "NAME",
                "MERCHANT", "KEY_ID", "EVENT_ID", "RUN_FOLDER", "SERVICE", "SCENARIO", "k=v", "…", "…]"}


def _rows() -> list[str]:
    """The first code span of each row of the table under '## Commands'."""
    text = README.read_text()
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) for m in re.finditer(r"^\| `([^`]+)` \|", section, flags=re.M)]


def _commands(span: str) -> list[tuple[list[str], str]]:
    """`start\\|stop SERVICE [--json]` → ([start], …), ([stop], …); `schema apply\\|status [--json]` →
    ([schema, apply], …), ([schema, status], …)."""
    words = span.replace("\\|", "|").split()
    path: list[str] = []
    rest_at = 0
    for i, word in enumerate(words):
        if word.startswith(("-", "[")) or not re.fullmatch(r"[a-z][a-z0-9|-]*", word):
            rest_at = i
            break
        path.append(word)
    else:
        rest_at = len(words)
    rest = " ".join(words[rest_at:])
    if path and "|" in path[-1]:
        return [([*path[:-1], alt], rest) for alt in path[-1].split("|")]
    return [(path, rest)]


def _command(root: Any, path: list[str]) -> Any:
    """The command at `path` in typer's command tree (its own click: duck-typed)."""
    cmd = root
    for name in path:
        assert hasattr(cmd, "commands"), f"'{' '.join(path)}': '{cmd.name}' has no subcommands"
        sub = cmd.commands.get(name)
        assert sub is not None, f"the README documents `payctl {' '.join(path)}`, which does not exist"
        cmd = sub
    return cmd


def _cases() -> list[tuple[str, list[str], str]]:
    return [(span, path, rest) for span in _rows() for path, rest in _commands(span)]


ROOT: Any = typer.main.get_command(create_app())
CASES = _cases()


def test_the_table_documents_every_command_group() -> None:
    assert len(CASES) >= 30
    documented = {path[0] for _, path, _ in CASES}
    assert set(ROOT.commands) <= documented, sorted(set(ROOT.commands) - documented)


@pytest.mark.parametrize(("span", "path", "rest"), CASES, ids=[" ".join(c[1]) + " " + c[2][:30] for c in CASES])
def test_each_documented_option_exists_with_its_documented_default(span: str, path: list[str], rest: str) -> None:
    cmd = _command(ROOT, path)
    by_flag = {opt: p for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for flag in re.findall(r"(?<![\w-])(--?[a-zA-Z][a-zA-Z0-9-]*)", rest):
        assert flag in by_flag, f"`payctl {' '.join(path)}` has no option {flag} (README: `{span}`)"
    for flag, value in re.findall(r"\[(--?[a-zA-Z][a-z0-9-]*) ([^\]\s]+)\]", rest):
        if value in PLACEHOLDERS or "|" in value:
            continue
        default = by_flag[flag].default
        shown = str(default.value if hasattr(default, "value") else default)
        assert _same(shown, value), (f"`payctl {' '.join(path)} {flag}`: the README says the default is "
                                     f"{value}, the program's is {shown}")


def _same(program: str, readme: str) -> bool:
    if program == readme:
        return True
    try:
        return float(program) == float(readme.rstrip("%"))
    except ValueError:
        return False
