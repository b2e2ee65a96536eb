"""The OpenAPI 3 document, generated from the same pydantic models that validate requests and
serialise responses."""

from __future__ import annotations

from typing import Any

from payflow.domain.sharding import MERCHANT_ID_MAX_LENGTH, MERCHANT_ID_PATTERN
from payflow.ingest.schemas import MODELS, RESPONSE_MODELS

_ERROR_DESCRIPTIONS = {
    401: "no valid API key (header WWW-Authenticate: Bearer realm=\"payflow\")",
    403: "MERCHANT_MISMATCH: merchantId is not the merchant of the API key",
    429: "LOCK_TIMEOUT, or AUTH_RATE_LIMITED after too many failed authentications (with Retry-After)",
}


def _responses(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "200": {
            "description": "payment",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Payment"}}},
        }
    }
    for code in codes:
        out[str(code)] = {
            "description": _ERROR_DESCRIPTIONS.get(code, "error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def _post(model: str, *codes: int, with_id: bool = True) -> dict[str, Any]:
    op: dict[str, Any] = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        },
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 64,
                                   "pattern": "^[A-Za-z0-9_.:-]+$"}}],
        "responses": _responses(400, 401, 403, 413, 415, 429, 503, 504, *codes),
    }
    if with_id:
        op["parameters"].append(_payment_id_param())
    return op


def _payment_id_param() -> dict[str, Any]:
    return {"name": "paymentId", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}


def build_openapi(currencies: list[str]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name, model in {**RESPONSE_MODELS, **MODELS}.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    for name, model in MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        if "currency" in schema.get("properties", {}):
            schema["properties"]["currency"]["enum"] = list(currencies)
        schemas[name] = schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "payflow ingest", "version": "1.0.0"},
        "paths": {
            "/payments/authorize": {"post": _post("AuthorizeRequest", 422, with_id=False)},
            "/payments/capture/{paymentId}": {"post": _post("CaptureRequest", 404, 409, 422)},
            "/payments/refund/{paymentId}": {"post": _post("RefundRequest", 404, 409, 422)},
            "/payments/cancel/{paymentId}": {"post": _post("CancelRequest", 404, 409, 422)},
            "/payments/{paymentId}": {
                "get": {
                    "parameters": [
                        _payment_id_param(),
                        {"name": "merchantId", "in": "query", "required": True,
                         "schema": {"type": "string", "minLength": 1, "maxLength": MERCHANT_ID_MAX_LENGTH,
                                    "pattern": MERCHANT_ID_PATTERN}},
                    ],
                    "responses": _responses(400, 401, 403, 404, 429, 503),
                }
            },
        },
        # Every payment call needs a merchant's API key (`payctl merchants create`); the key decides
        # the merchant: 401 without a valid one, 403 when merchantId names another merchant.
        "security": [{"merchantKey": []}],
        "components": {"schemas": schemas, "securitySchemes": {"merchantKey": {
            "type": "http", "scheme": "bearer", "bearerFormat": "pf.<merchantId>.<keyId>.<secret>",
            "description": "a merchant's secret API key, issued by `payctl merchants create|rotate`"}}},
    }
