"""API errors in the contract's shape: {code, message, paymentId?, errors?}."""

from __future__ import annotations

from typing import Any

from payflow.domain.payment import TransitionError


class ApiError(Exception):
    def __init__(
        self,
        http_status: int,
        code: str,
        message: str,
        *,
        payment_id: int | None = None,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.message = message
        self.payment_id = payment_id
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.payment_id is not None:
            out["paymentId"] = self.payment_id
        if self.errors:
            out["errors"] = self.errors
        return out


def validation_failed(errors: list[dict[str, str]]) -> ApiError:
    fields = ", ".join(f"{e['field']} ({e['rule']})" for e in errors)
    return ApiError(400, "VALIDATION_FAILED", f"invalid request: {fields}", errors=errors)


def not_found(what: str = "payment not found", payment_id: int | None = None) -> ApiError:
    return ApiError(404, "NOT_FOUND", what, payment_id=payment_id)


_STATUS_BY_KIND = {"conflict": 409, "amount_exceeded": 422}


def http_status_of(err: TransitionError) -> int:
    """The HTTP status of a domain rejection: 409 for a wrong state, 422 for an amount too large."""
    return _STATUS_BY_KIND[err.kind]


def from_transition(err: TransitionError, payment_id: int | None = None) -> ApiError:
    return ApiError(http_status_of(err), err.code, err.message, payment_id=payment_id)
