"""A tiny threaded HTTP server for the workers' /health, /metrics and JSON endpoints."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, generate_latest

Route = Callable[[], tuple[int, Any]]


def serve(port: int, routes: dict[str, Route], host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve GET routes (JSON bodies) plus /metrics in a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(REGISTRY), "text/plain; version=0.0.4")
                return
            route = routes.get(path)
            if route is None:
                self._send(404, json.dumps({"code": "NOT_FOUND", "message": path}).encode(), "application/json")
                return
            status, body = route()
            self._send(status, json.dumps(body).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"http-{port}", daemon=True).start()
    return server
