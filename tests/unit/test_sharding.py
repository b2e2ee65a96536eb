import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from payflow.domain.sharding import (
    auto_increment_settings,
    is_merchant_id,
    shard_for_id,
    shard_for_merchant,
)
from payflow.ingest.schemas import CancelRequest


def test_even_merchant_goes_to_shard1_and_odd_to_shard2():
    assert shard_for_merchant("MERCHANT-2", 2) == 0
    assert shard_for_merchant("MERCHANT-3", 2) == 1
    assert shard_for_merchant("MERCHANT-42", 2) == 0


def test_digits_anywhere_form_one_integer():
    assert shard_for_merchant("A1B2", 2) == 12 % 2
    assert shard_for_merchant("M-0007", 3) == 7 % 3


def test_no_digits_uses_stable_crc32():
    first = shard_for_merchant("acme", 2)
    assert first == shard_for_merchant("acme", 2)
    assert first in (0, 1)
    assert {shard_for_merchant(name, 2) for name in ("acme", "shop", "zeta", "beta", "kappa")} == {0, 1}


@given(shard=st.integers(0, 7), extra=st.integers(1, 8), step=st.integers(0, 10_000))
def test_ids_made_with_session_settings_name_their_shard(shard, extra, step):
    n = shard + extra
    increment, offset = auto_increment_settings(shard, n)
    made = offset + step * increment  # what MariaDB hands out with these settings
    assert shard_for_id(made, n) == shard


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError):
        shard_for_id(0, 2)
    with pytest.raises(ValueError):
        auto_increment_settings(2, 2)


def _is_valid_merchant_id(merchant_id: str) -> bool:
    try:
        CancelRequest.model_validate({"merchantId": merchant_id})
    except ValidationError:
        return False
    return True


def test_merchant_id_rule():
    assert not _is_valid_merchant_id("")
    assert not _is_valid_merchant_id("x" * 33)
    assert not _is_valid_merchant_id("bad id")
    assert _is_valid_merchant_id("MERCHANT_1-a")


@pytest.mark.parametrize("merchant_id", ["", "x" * 32, "x" * 33, "bad id", "MERCHANT_1-a", "M\n", "m.1", "é", "-_-"])
def test_the_merchant_id_rule_is_one_rule(merchant_id):
    """payctl's check (payflow.domain.sharding.is_merchant_id) agrees with the API's request models."""
    assert is_merchant_id(merchant_id) is _is_valid_merchant_id(merchant_id)
