"""Run the payctl CLI in this process: the same entry point (`payctl.cli.app.main`) and the same
error-to-exit mapping as the installed command, without a new interpreter per call (property tests
run hundreds). The click command typer builds from the app is built once and reused: building it
is most of the cost of a call. An exception that escapes `main` is what a user would see as a
traceback: it is raised here, so the calling test fails with it."""

from __future__ import annotations

import contextlib
import functools
import io
import os
import subprocess
import sys
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import typer

from payctl.cli import app as cli_app
from payctl.cli import output


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return self.stderr.splitlines()


_create_app = cli_app.create_app


@functools.cache
def _command() -> Any:
    return typer.main.get_command(_create_app())


class _BuiltApp:
    """Stands in for the typer app inside `main`: calls the click command built once."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _command()(*args, **kwargs)


def run_payctl(*args: str) -> Outcome:
    # A new process sizes its consoles from its own environment: so does each call here, and none
    # is left behind sized by this call's (maybe patched) environment.
    output.console.cache_clear()
    output.err_console.cache_clear()
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with mock.patch.object(sys, "argv", ["payctl", *args]), mock.patch.object(cli_app, "create_app", _BuiltApp), \
            redirect_stdout(out), redirect_stderr(err):
        try:
            cli_app.main()
        except SystemExit as exc:
            code = exc.code
        finally:
            output.console.cache_clear()
            output.err_console.cache_clear()
    assert isinstance(code, int), f"exit code {code!r}"
    return Outcome(code, out.getvalue(), err.getvalue())


def completed(*args: str, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`run_payctl` in the shape `subprocess.run` answers (returncode, stdout, stderr), with `env` as
    the whole environment of the call and `cwd` its working folder, as a subprocess would have them."""
    with mock.patch.dict(os.environ, dict(env) if env is not None else {}, clear=env is not None), \
            contextlib.chdir(cwd if cwd is not None else Path.cwd()):
        out = run_payctl(*args)
    return subprocess.CompletedProcess(["payctl", *args], out.code, out.stdout, out.stderr)
