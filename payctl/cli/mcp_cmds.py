"""payctl mcp serve: the MCP server for AI assistants (stdio, or streamable HTTP on 127.0.0.1)."""

from __future__ import annotations

from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import REPORTS, ReportsOpt
from payctl.errors import UsageError
from payctl.stack.backend import backend_for


def serve(
    ctx: typer.Context,
    transport: Annotated[str, typer.Option(help="stdio (default) or http (streamable HTTP on 127.0.0.1)")] = "stdio",
    port: Annotated[int, typer.Option(help="port for --transport http")] = 8765,
    reports: ReportsOpt = REPORTS,
) -> None:
    """Serve the platform's operations as MCP tools (and reports/journals as resources)."""
    if transport not in ("stdio", "http"):
        raise UsageError(f"--transport '{transport}' is not a transport", "use stdio or http")
    if not 1024 <= port <= 65535:
        raise UsageError(f"--port {port} is out of range", "give 1024..65535")
    from payctl.mcp.server import build_server, context_for

    server = build_server(context_for(backend_for(load(ctx)), reports.resolve()))
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=port)


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="MCP server for AI assistants.")
    group.command("serve")(serve)
    app.add_typer(group, name="mcp")
