"""Session variables that carry a value between statements sent in one round trip."""

from __future__ import annotations

# The id of the payment inserted earlier in the same round trip: authorize sends the payment, its
# outbox event and its idempotency record together, and only the server knows the new id then.
NEW_PAYMENT_ID = "@new_payment_id"
