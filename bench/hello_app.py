"""A bare Flask app answering POST /payments/authorize with a fixed JSON body: what a Python WSGI
app costs on this machine with no work at all (the bench's ceiling)."""

from __future__ import annotations

import json

from flask import Flask, Response, request

app = Flask("hello")
_BODY = json.dumps({"paymentId": 1, "status": "AUTHORIZED", "message": "hello"})


@app.post("/payments/authorize")
def authorize() -> Response:
    request.get_data()
    return Response(_BODY, mimetype="application/json")
