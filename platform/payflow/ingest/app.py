"""Flask application factory for the ingest service. Nothing happens at import time."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import orjson
from flask import Flask, Response, g, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from payflow.common.faults import FaultHooks
from payflow.config import PlatformConfig
from payflow.db.pool import ShardPools, ShardUnavailable
from payflow.ingest import metrics
from payflow.ingest.auth import Authenticator, AuthFailed, Failure, FailureLimiter, KeyCache, source_address
from payflow.ingest.errors import ApiError, not_found, validation_failed
from payflow.ingest.idempotency import fingerprint, resolve_key
from payflow.ingest.openapi import build_openapi
from payflow.ingest.schemas import (
    AuthorizeRequest,
    CancelRequest,
    CaptureRequest,
    RefundRequest,
    field_errors,
)
from payflow.ingest.service import Outcome, PaymentService

log = logging.getLogger("payflow.ingest")
MAX_ID = 2**63 - 1
_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE",
               415: "UNSUPPORTED_MEDIA_TYPE", 400: "VALIDATION_FAILED"}


# The views a merchant's API key guards (Flask endpoint names).
GUARDED = frozenset({"authorize", "capture", "refund", "cancel", "get_payment"})
MERCHANT = "payflow.merchant"  # the environ key of the authenticated merchant
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="payflow"'}


def auth_error(failure: AuthFailed) -> ApiError:
    """The answer to a refused request: 401 (no or bad key), 403 (another merchant's), 429."""
    if failure.reason is Failure.MISMATCH:
        return ApiError(403, "MERCHANT_MISMATCH", "merchantId is not the merchant of this API key")
    if failure.reason is Failure.RATE_LIMITED:
        return ApiError(429, "AUTH_RATE_LIMITED", "too many failed authentications from this address; retry later",
                        headers={"Retry-After": str(failure.retry_after_s or 1)})
    return ApiError(401, "UNAUTHORIZED", "a valid API key is required: Authorization: Bearer <key>",
                    headers=CHALLENGE)


def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(orjson.dumps(body), status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _read_body(model: type[BaseModel], max_bytes: int) -> tuple[Any, dict[str, Any]]:
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {max_bytes} bytes")
    if not request.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
    raw = request.get_data(cache=False)
    if len(raw) > max_bytes:
        raise ApiError(413, "PAYLOAD_TOO_LARGE", f"request body exceeds {max_bytes} bytes")
    try:
        data = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError):
        raise validation_failed([{"field": "body", "rule": "valid JSON"}]) from None
    if not isinstance(data, dict):
        raise validation_failed([{"field": "body", "rule": "must be a JSON object"}])
    try:
        return model.model_validate(data), data
    except ValidationError as exc:
        raise validation_failed(field_errors(exc)) from None


def _check_id(payment_id: int) -> None:
    if not 1 <= payment_id <= MAX_ID:
        raise not_found(payment_id=None)


def _respond(outcome: Outcome) -> Response:
    headers = dict(outcome.headers)
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(outcome.body, outcome.status, headers)


def create_app(config: PlatformConfig, service: PaymentService | None = None) -> Flask:
    settings = config.settings
    app = Flask("payflow.ingest")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    svc = service or PaymentService(ShardPools(config.shards, settings), settings)
    instance = f"ingest-{config.vm}"
    currencies = set(settings.currencies)
    openapi_doc = build_openapi(settings.currencies)
    faults = FaultHooks(config.fault_dir, instance)
    auth_on = settings.api_auth == "on"
    authenticator = Authenticator(
        KeyCache(lambda merchant_id: svc.merchant_keys(merchant_id), settings.api_key_cache_ttl_s,
                 settings.api_key_refresh_s, settings.api_key_cache_merchants),
        FailureLimiter(settings.auth_fail_limit, settings.auth_fail_window_s, settings.auth_fail_sources))
    trusted_proxies = frozenset(settings.auth_trusted_proxies)
    if not auth_on:
        log.warning("API authentication is OFF (api_auth = \"off\"): any caller acts as any merchant")

    def refuse(failure: AuthFailed) -> ApiError:
        metrics.AUTH_FAILURES.labels(instance, failure.reason.value).inc()
        return auth_error(failure)

    def check_merchant(merchant_id: str) -> str:
        """The request's merchantId must be the key's merchant (403 otherwise)."""
        if auth_on and merchant_id != request.environ[MERCHANT]:
            raise refuse(AuthFailed(Failure.MISMATCH))
        return merchant_id

    def check_currency(currency: str) -> None:
        if currency not in currencies:
            raise validation_failed([{"field": "currency", "rule": f"one of {','.join(sorted(currencies))}"}])

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.before_request
    def _stall_if_slowed() -> None:
        """Chaos `slow-requests`: payments stall (a GC storm, a slow dependency) while /health
        stays as quick as the instance's threads allow. Runs after the timer: the stall is latency."""
        if request.path.startswith("/payments"):
            stall = faults.delay_s("slow-requests")
            if stall:
                time.sleep(stall)

    @app.before_request
    def _authenticate() -> None:
        """The key decides the merchant: checked before the body is read, so an unauthenticated
        caller learns nothing about the request it sent (routing errors, 404/405, come first)."""
        if not auth_on:
            return
        # Through the environ and the request object it holds, not the `request`/`g` proxies: each
        # proxy access costs several calls, and this runs on every payment request.
        environ = request.environ
        rule = environ["werkzeug.request"].url_rule
        if rule is None or rule.endpoint not in GUARDED:
            return

        def source() -> str:
            return source_address(environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), trusted_proxies)

        try:
            environ[MERCHANT] = authenticator.authenticate(environ.get("HTTP_AUTHORIZATION"), source)
        except AuthFailed as failure:
            raise refuse(failure) from None

    @app.after_request
    def _observe(resp: Response) -> Response:
        rule = request.url_rule.rule if request.url_rule else None
        metrics.HTTP_SECONDS.labels(
            "ingest-service", instance, metrics.method_label(request.method), metrics.templated_uri(rule),
            str(resp.status_code),
        ).observe(time.perf_counter() - g.get("started", time.perf_counter()))
        resp.headers["X-Served-By"] = instance
        return resp

    @app.errorhandler(ApiError)
    def _api_error(err: ApiError) -> Response:
        return _json(err.body(), err.http_status, err.headers)

    @app.errorhandler(ShardUnavailable)
    def _shard_down(err: ShardUnavailable) -> Response:
        retry = str(max(1, settings.shard_retry_after_s))
        if err.outcome_unknown:
            # Not a 503: the gateway retries 503s on the other instance because they promise that
            # nothing was written; this one cannot promise it.
            body = {"code": "OUTCOME_UNKNOWN", "message": f"{err.shard.name} stopped answering during commit; "
                    "the change may have been recorded: retry with the same Idempotency-Key"}
            return _json(body, 504, {"Retry-After": retry})
        body = {"code": "SHARD_UNAVAILABLE", "message": f"{err.shard.name} is unavailable; nothing was recorded; "
                "retry later"}
        return _json(body, 503, {"Retry-After": retry})

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        status = err.code or 500
        body = {"code": _HTTP_CODES.get(status, "HTTP_ERROR"), "message": err.description or err.name}
        return _json(body, status)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unhandled error")
        return _json({"code": "INTERNAL_ERROR", "message": "internal error; see the service log"}, 500)

    @app.post("/payments/authorize")
    def authorize() -> Response:
        req, raw = _read_body(AuthorizeRequest, settings.max_body_bytes)
        key = resolve_key(req.idempotencyKey, request.headers.get("Idempotency-Key"))
        if key is None:
            raise validation_failed([{"field": "idempotencyKey", "rule": "required (body or Idempotency-Key)"}])
        check_currency(req.currency)
        h = fingerprint("authorize", None, raw)
        return _respond(svc.authorize(check_merchant(req.merchantId), req.amount, req.currency, key, h))

    def transition(payment_id: int, model: type[BaseModel], operation: str) -> tuple[Any, str | None, str]:
        """Shared front half of capture/refund/cancel: id check, body, key and fingerprint."""
        _check_id(payment_id)
        req, raw = _read_body(model, settings.max_body_bytes)
        check_merchant(req.merchantId)
        key = resolve_key(req.idempotencyKey, request.headers.get("Idempotency-Key"))
        return req, key, fingerprint(operation, payment_id, raw)

    @app.post("/payments/capture/<int:payment_id>")
    def capture(payment_id: int) -> Response:
        req, key, h = transition(payment_id, CaptureRequest, "capture")
        return _respond(svc.capture(payment_id, req.merchantId, req.amount, key, h))

    @app.post("/payments/refund/<int:payment_id>")
    def refund(payment_id: int) -> Response:
        req, key, h = transition(payment_id, RefundRequest, "refund")
        return _respond(svc.refund(payment_id, req.merchantId, req.amount, req.reason, key, h))

    @app.post("/payments/cancel/<int:payment_id>")
    def cancel(payment_id: int) -> Response:
        req, key, h = transition(payment_id, CancelRequest, "cancel")
        return _respond(svc.cancel(payment_id, req.merchantId, key, h))

    @app.get("/payments/<int:payment_id>")
    def get_payment(payment_id: int) -> Response:
        _check_id(payment_id)
        merchant_id = request.args.get("merchantId", "")
        try:
            CancelRequest.model_validate({"merchantId": merchant_id})
        except ValidationError as exc:
            raise validation_failed(field_errors(exc)) from None
        return _json(svc.get(payment_id, check_merchant(merchant_id)))

    @app.get("/health")
    def health() -> Response:
        """Liveness of this instance (what the gateway checks): 200 whenever it can answer. Shard
        readiness comes from the per-shard breakers, with no I/O, so a hung shard cannot make the
        gateway mark every instance down."""
        shards = svc.readiness()
        status = "UP" if all(shards.values()) else "DEGRADED"
        return _json({"status": status, "instance": instance, "shards": shards})

    @app.get("/health/shards/<shard>")
    def shard_health(shard: str) -> Response:
        """Does this instance reach `shard` (its breaker closed)? 200, else 503. The gateway checks
        it per shard and, while only one instance reaches a shard, queues that shard's calls for it
        rather than bounce them off the other (haproxy.cfg.j2). No I/O, as /health."""
        shards = svc.readiness()
        if shard not in shards:
            raise not_found(f"no shard {shard!r}; shards: {', '.join(sorted(shards))}")
        ready = shards[shard]
        return _json({"shard": shard, "ready": ready, "instance": instance}, 200 if ready else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(metrics.render_metrics(), mimetype="text/plain; version=0.0.4")

    @app.get("/openapi.json")
    def openapi() -> Response:
        return _json(openapi_doc)

    return app


def create_app_from_env() -> Flask:
    from payflow.config import load_config

    logging.basicConfig(level=os.environ.get("PAYFLOW_LOG_LEVEL", "INFO"))
    return create_app(load_config())
