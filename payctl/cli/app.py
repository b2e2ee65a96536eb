"""payctl entry point: registers the command groups, turns PayctlError into one line + exit code."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from payctl.cli import chaos_cmds, context, loadtest_cmds, ops_cmds, schema_cmds, stack_cmds
from payctl.cli.output import err_console
from payctl.errors import PayctlError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Stand up, break, load and judge the sharded payment platform.")


@app.callback()
def _global(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="topology file (default ./stack.toml)")] = None,
) -> None:
    context.set_config(config)


stack_cmds.register(app)
stack_cmds.register_smoke(app)
app.add_typer(schema_cmds.app, name="schema")
ops_cmds.register(app)
app.add_typer(loadtest_cmds.app, name="loadtest")
app.add_typer(chaos_cmds.app, name="chaos")


def main() -> None:
    try:
        # standalone_mode=False hands typer.Exit codes back as the return value
        result = app(standalone_mode=False)
    except PayctlError as err:
        err_console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
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
