"""payctl mcp serve: the MCP server for AI assistants (stdio, or streamable HTTP on 127.0.0.1)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import REPORTS, ReportsOpt
from payctl.errors import UsageError
from payctl.stack.backend import backend_for


def serve(
    ctx: typer.Context,
    transport: Annotated[str, typer.Option(help="stdio (default) or http (streamable HTTP on 127.0.0.1)")] = "stdio",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port for --transport http")] = 8765,
    reports: ReportsOpt = REPORTS,
    allow_destructive: Annotated[bool, typer.Option(
        "--allow-destructive",
        help="let destructive tools (chaos_run) run for clients that cannot ask the user (no MCP elicitation); "
             "clients that can ask always ask")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="log to stderr: -v each request (INFO), -vv DEBUG")] = 0,
) -> None:
    """Serve the platform's operations as MCP tools (and reports/journals as resources)."""
    if transport not in ("stdio", "http"):
        raise UsageError(f"--transport '{transport}' is not a transport", "use stdio or http")
    if not 1024 <= port <= 65535:
        raise UsageError(f"--port {port} is out of range", "give 1024..65535")
    from payctl.mcp.server import LogLevel, build_server, context_for

    # stderr is the operator's: warnings only by default, no line per HTTP request or MCP message.
    level: LogLevel = "DEBUG" if verbose >= 2 else "INFO" if verbose == 1 else "WARNING"
    server = build_server(context_for(backend_for(load(ctx)), reports.resolve()),
                          allow_destructive=allow_destructive, log_level=level)
    # The SDK configures the root logger only when nothing did before; set the level either way.
    logging.getLogger().setLevel(level)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="MCP server for AI assistants.")
    group.command("serve")(serve)
    app.add_typer(group, name="mcp")
