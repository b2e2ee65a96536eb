"""payctl console: the ops console's URL (and whether it answers); --open opens it in a browser;
--token prints the token its actions need when it listens beyond loopback (payctl.console.settings)."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import JsonOpt
from payctl.cli.output import console as out
from payctl.cli.output import print_json
from payctl.console.settings import is_loopback, token_file
from payctl.stack.probes import http_json


def console(
    ctx: typer.Context,
    open_browser: Annotated[bool, typer.Option("--open", help="open the page in a browser")] = False,
    show_token: Annotated[bool, typer.Option("--token", help="print the token the console's actions need")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Print the console's URL; exit 1 when it does not answer."""
    topo = load(ctx)
    if show_token:
        if is_loopback(topo.shared_address):
            out().print("the console listens on loopback: its actions need no token", highlight=False)
            return
        path = token_file(topo.state_path())
        if not path.exists():
            out().print(f"no token yet ({path}): the console makes it when it starts", highlight=False)
            raise typer.Exit(1)
        print(path.read_text().strip())
        return
    url = f"http://{topo.console_host}:{topo.console_port}/"
    try:
        up = http_json(topo.console_port, "/health", host=topo.console_host)[0] == 200
    except Exception:
        up = False
    if json_out:
        print_json({"url": url, "up": up})
    else:
        out().print(url if up else f"{url} (not answering: is the stack up? `payctl up`)", highlight=False)
    if open_browser and up:
        webbrowser.open(url)
    if not up:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(console)
