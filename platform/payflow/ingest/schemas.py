"""Request bodies and their validation rules; the OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from payflow.domain.payment import MAX_AMOUNT, Status
from payflow.domain.sharding import MERCHANT_ID_MAX_LENGTH, MERCHANT_ID_PATTERN

MerchantId = Annotated[str, Field(min_length=1, max_length=MERCHANT_ID_MAX_LENGTH, pattern=MERCHANT_ID_PATTERN,
                                  strict=True)]
Amount = Annotated[int, Field(ge=1, le=MAX_AMOUNT, strict=True)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", strict=True)]
IdempotencyKey = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$", strict=True)
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AuthorizeRequest(_Body):
    merchantId: MerchantId
    amount: Amount
    currency: Currency
    idempotencyKey: IdempotencyKey | None = None


class CaptureRequest(_Body):
    merchantId: MerchantId
    amount: Amount | None = None
    idempotencyKey: IdempotencyKey | None = None


class RefundRequest(_Body):
    merchantId: MerchantId
    amount: Amount | None = None
    reason: Annotated[str, Field(max_length=200, strict=True)] | None = None
    idempotencyKey: IdempotencyKey | None = None


class CancelRequest(_Body):
    merchantId: MerchantId
    idempotencyKey: IdempotencyKey | None = None


class LedgerEntry(_Body):
    eventId: int
    account: str
    direction: Literal["DEBIT", "CREDIT"]
    amount: int
    currency: str
    createdAt: str


class Payment(_Body):
    """The payment as the API returns it; responses are serialised through this model."""

    paymentId: int
    merchantId: str
    status: Status
    amount: int
    capturedAmount: int
    refundedAmount: int
    refundPendingAmount: int
    currency: str
    createdAt: str = Field(description="ISO 8601, milliseconds")
    updatedAt: str = Field(description="ISO 8601, milliseconds")
    ledgerEntries: list[LedgerEntry]
    message: str


class FieldError(_Body):
    field: str
    rule: str
    message: str | None = None


class Error(_Body):
    code: str
    message: str
    paymentId: int | None = None
    errors: list[FieldError] | None = None


_RULES = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "greater_than_equal": "min {ge}",
    "less_than_equal": "max {le}",
    "string_too_short": "min length {min_length}",
    "string_too_long": "max length {max_length}",
    "string_pattern_mismatch": "pattern {pattern}",
    "model_type": "must be a JSON object",
}


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{field, rule, message}] with stable, readable rule names."""
    out = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"]) or "body"
        template = _RULES.get(err["type"], err["type"])
        ctx: dict[str, Any] = err.get("ctx") or {}
        try:
            rule = template.format(**ctx)
        except (KeyError, IndexError):
            rule = template
        out.append({"field": field, "rule": rule, "message": err["msg"]})
    return out


RESPONSE_MODELS: dict[str, type[BaseModel]] = {"Payment": Payment, "Error": Error}

MODELS: dict[str, type[_Body]] = {
    "AuthorizeRequest": AuthorizeRequest,
    "CaptureRequest": CaptureRequest,
    "RefundRequest": RefundRequest,
    "CancelRequest": CancelRequest,
}
