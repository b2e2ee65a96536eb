"""payctl entry point: builds the app from the command modules, turns PayctlError into one line + exit code.

Every `*_cmds` module exposes `register(app)`; nothing is registered at import time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

import payctl
from payctl.cli import (
    chaos_cmds,
    compose_cmds,
    console_cmds,
    history_cmds,
    loadtest_cmds,
    mcp_cmds,
    merchant_cmds,
    ops_cmds,
    schema_cmds,
    smoke_cmds,
    stack_cmds,
)
from payctl.cli.context import CliState
from payctl.cli.output import err_console
from payctl.errors import PayctlError

# In help order.
REGISTRARS: tuple[Callable[[typer.Typer], None], ...] = (
    stack_cmds.register, compose_cmds.register, smoke_cmds.register, schema_cmds.register, ops_cmds.register,
    merchant_cmds.register,
    loadtest_cmds.register, chaos_cmds.register, history_cmds.register, console_cmds.register, mcp_cmds.register,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"payctl {payctl.__version__}")
        raise typer.Exit(0)


def _global(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="topology file, or the folder holding it (default ./stack.toml; also $PAYCTL_CONFIG)",
    )] = None,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print payctl's version and exit")] = False,
) -> None:
    ctx.obj = CliState(config=config)


def create_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help="Stand up, break, load and judge the sharded payment platform.")
    app.callback()(_global)
    for register in REGISTRARS:
        register(app)
    return app


def main() -> None:
    app = create_app()
    try:
        # standalone_mode=False hands typer.Exit codes back as the return value
        result = app(standalone_mode=False)
    except PayctlError as err:
        # escaped: file names and keys quoted from a damaged file are text, not rich markup
        err_console().print(f"[red]error:[/red] {escape(str(err))}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console().print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console().print("interrupted")
        sys.exit(130)
    except Exception as exc:
        # click usage errors (typer vendors its own click, so match by shape, not by class)
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            sys.exit(2)
        raise
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
