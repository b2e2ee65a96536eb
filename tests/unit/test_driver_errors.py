"""The ingest's pool uses mysqlclient, everyone else PyMySQL: the same MariaDB error must be read
the same way from either driver (retry a deadlock, replay on a duplicate key, give up on a lost
shard, and nothing else)."""

from __future__ import annotations

import MySQLdb
import pymysql
import pytest

from payflow.db.pool import error_code, is_duplicate_key, is_retryable_conflict, is_unavailable_error

DRIVERS = [pymysql.err, MySQLdb]


@pytest.mark.parametrize("driver", DRIVERS)
def test_deadlock_and_lock_wait_are_retried_and_nothing_else(driver) -> None:  # type: ignore[no-untyped-def]
    assert is_retryable_conflict(driver.OperationalError(1213, "Deadlock found"))
    assert is_retryable_conflict(driver.OperationalError(1205, "Lock wait timeout exceeded"))
    assert not is_retryable_conflict(driver.OperationalError(2013, "Lost connection"))
    assert not is_retryable_conflict(driver.IntegrityError(1213, "not an operational error"))


@pytest.mark.parametrize("driver", DRIVERS)
def test_only_a_duplicate_key_is_a_duplicate_key(driver) -> None:  # type: ignore[no-untyped-def]
    assert is_duplicate_key(driver.IntegrityError(1062, "Duplicate entry"))
    assert not is_duplicate_key(driver.IntegrityError(1452, "foreign key"))
    assert not is_duplicate_key(driver.OperationalError(1062, "wrong class"))


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_gone_shard_is_unavailable_a_refused_statement_is_not(driver) -> None:  # type: ignore[no-untyped-def]
    for code in (2002, 2003, 2006, 2013):
        assert is_unavailable_error(driver.OperationalError(code, "gone"))
    assert is_unavailable_error(driver.InterfaceError(0, "closed"))
    assert not is_unavailable_error(driver.OperationalError(1213, "Deadlock found"))
    assert not is_unavailable_error(driver.IntegrityError(1062, "Duplicate entry"))
    assert not is_unavailable_error(driver.ProgrammingError(1064, "syntax"))


def test_error_code_reads_either_driver_and_nothing_else() -> None:
    assert error_code(pymysql.err.OperationalError(1205, "x")) == 1205
    assert error_code(MySQLdb.IntegrityError(1062, "x")) == 1062
    assert error_code(MySQLdb.OperationalError()) is None
    assert error_code(ValueError(1062)) is None
