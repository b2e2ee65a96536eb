"""README and program agree: every row of the README's command table names commands that exist,
options each of them takes, and the defaults they really have (`[--rate 20]` is the default of
--rate). Read from the click command tree typer builds, not from help text (which wraps)."""

from __future__ import annotations

import re
import shlex
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


def _example_commands() -> list[list[str]]:
    """Every `payctl …` command in the README's code blocks, as argv (pipes, `&&`, `$(…)` and comments
    cut away)."""
    text = README.read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", text, flags=re.S | re.M)
    found = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #")[0].split(" # ")[0]
            line = re.sub(r'"\$\((?![^)]*payctl)[^)]*\)"', "VALUE", line)  # "$(mktemp -d)" is a value
            for part in re.split(r"&&|\||\$\(", line):
                words = shlex.split(part.replace(")", " "), posix=True) if "payctl " in part else []
                if words and words[0].endswith("payctl"):
                    found.append(words[1:])
    return found


EXAMPLES = _example_commands()


def _parse(argv: list[str]) -> tuple[list[str], Any]:
    """Walk argv through the command tree: (the command path, the command), global options skipped."""
    cmd, path, i = ROOT, [], 0
    while i < len(argv) and hasattr(cmd, "commands"):
        word = argv[i]
        if word in ("--config", "-c"):
            i += 2
            continue
        assert word in cmd.commands, f"README example `payctl {' '.join(argv)}`: no command '{word}'"
        cmd = cmd.commands[word]
        path.append(word)
        i += 1
    return path, cmd


def test_the_readme_shows_examples_of_the_daily_commands() -> None:
    assert len(EXAMPLES) >= 20
    shown = {" ".join(_parse(argv)[0][:2]) for argv in EXAMPLES}
    assert {"up", "status", "logs", "reconcile", "loadtest run", "loadtest compare", "chaos run"} <= shown, shown


@pytest.mark.parametrize("argv", EXAMPLES, ids=[" ".join(a)[:60] for a in EXAMPLES])
def test_every_readme_example_names_real_options(argv: list[str]) -> None:
    path, cmd = _parse(argv)
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for word in argv[len(path):]:
        flag = word.split("=", 1)[0]
        if flag.startswith("-") and flag not in ("--config", "-c"):
            assert flag in known, f"README example `payctl {' '.join(argv)}`: `payctl {' '.join(path)}` has no {flag}"


def test_a_readme_dry_run_example_runs_as_printed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples that need no stack run in a folder without stack.toml and exit 0."""
    from typer.testing import CliRunner

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAYCTL_CONFIG", raising=False)
    safe = [argv for argv in EXAMPLES if "--dry-run" in argv]
    assert safe
    for argv in safe:
        result = CliRunner().invoke(create_app(), argv)
        assert result.exit_code == 0, (argv, result.output[-2000:])
