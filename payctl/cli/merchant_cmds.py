"""merchants create / list / rotate / revoke: the merchants' API keys (DESIGN §3). A secret is
printed by create and rotate only, once; list never shows one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from payctl.cli.context import load
from payctl.cli.options import JsonOpt, MerchantArg
from payctl.cli.output import console, print_json, table
from payctl.ops import merchants
from payctl.ops.merchants import IssuedKey


def _show_new_key(result: IssuedKey, verb: str) -> None:
    out = console()
    out.print(f"{verb} key {result.key_id} for {result.merchant_id} ({result.shard})")
    # soft_wrap: the key on one line, whole, for copying; markup off: it is data
    out.print(f"key: {result.key}", markup=False, highlight=False, soft_wrap=True)
    out.print("It is shown only now: store it in the merchant's secret store.")


def create(ctx: typer.Context, merchant: MerchantArg, json_out: JsonOpt = False) -> None:
    """Issue an API key for a merchant (its secret is printed once)."""
    result = merchants.create(load(ctx), merchant)
    if json_out:
        print_json(result.to_json())
    else:
        _show_new_key(result, "issued")


def list_cmd(ctx: typer.Context,
             merchant: Annotated[str | None, typer.Argument(help="only this merchant")] = None,
             json_out: JsonOpt = False) -> None:
    """Keys per merchant: id, state, created, expiry (never a secret)."""
    rows = merchants.list_keys(load(ctx), merchant)
    if json_out:
        print_json([r.to_json() for r in rows])
        return
    console().print(table("API keys", ["merchant", "key id", "shard", "state", "created", "expires", "revoked"],
                          [[r.merchant_id, r.key_id, r.shard, r.state, _when(r.created_at), _when(r.expires_at),
                            _when(r.revoked_at)] for r in rows]))


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat(timespec="seconds")


def rotate(ctx: typer.Context, merchant: MerchantArg,
           grace: Annotated[float | None, typer.Option(
               help="seconds the merchant's other keys stay valid (default: the api_key_grace_s setting)")] = None,
           json_out: JsonOpt = False) -> None:
    """Issue a new key; the merchant's other keys keep working for the grace period, then stop."""
    result = merchants.rotate(load(ctx), merchant, grace)
    if json_out:
        print_json(result.to_json())
        return
    _show_new_key(result, "rotated: new")
    for r in result.replaced:
        console().print(f"replaced key {r.key_id} stays valid for {r.valid_for_s:g} s")


def revoke(ctx: typer.Context, merchant: MerchantArg,
           key_id: Annotated[str | None, typer.Argument(help="the key id (default: every key of the merchant)")] = None,
           json_out: JsonOpt = False) -> None:
    """End a key now (or all of the merchant's): ingests refuse it within api_key_cache_ttl_s."""
    result = merchants.revoke(load(ctx), merchant, key_id)
    if json_out:
        print_json(result.to_json())
    else:
        console().print(f"revoked {result.revoked} key(s) of {result.merchant_id}; refused everywhere within "
                        f"{result.effective_within_s:g} s")


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True, help="Merchants' API keys: issue, list, rotate, revoke.")
    group.command("create")(create)
    group.command("list")(list_cmd)
    group.command("rotate")(rotate)
    group.command("revoke")(revoke)
    app.add_typer(group, name="merchants")
