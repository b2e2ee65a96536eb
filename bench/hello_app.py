"""A bare Flask app answering POST /payments/authorize with a fixed JSON body: what a Python WSGI
app costs on this machine with no work at all (the bench's ceiling)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request

app = Flask("hello")
_BODY = json.dumps({"paymentId": 1, "status": "AUTHORIZED", "message": "hello"})


@app.post("/payments/authorize")
def authorize() -> Response:
    request.get_data()
    return Response(_BODY, mimetype="application/json")


def raw_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """The same answer with no framework at all: what the WSGI server alone costs."""
    environ["wsgi.input"].read()
    body = _BODY.encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
