"""Which database errors are waited out (connection trouble) and which fail at once (bad statements)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc as sa_exc

from nexus.core import db
from nexus.core.db import is_unavailable, outlasting_outages


class CannotConnectNowError(Exception):  # asyncpg's name while Postgres starts up
    pass


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "refused")),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sa_exc.DBAPIError("SELECT 1", {}, CannotConnectNowError("the database system is starting up")),
        sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        FileNotFoundError(2, "No such file or directory: '/var/postgres/.s.PGSQL.5432'"),
        ConnectionResetError(104, "reset by peer"),
    ],
)
def test_connection_trouble_is_waited_out(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key value violates unique constraint")),
        sa_exc.ProgrammingError("SELEC", {}, Exception("syntax error")),
        ValueError("bad value"),
    ],
)
def test_statement_errors_fail_at_once(error: Exception) -> None:
    assert not is_unavailable(error)


async def test_a_write_waits_for_the_database_and_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(db, "backoff", no_sleep)
    calls = 0

    @outlasting_outages
    async def store() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise sa_exc.OperationalError("INSERT", {}, ConnectionRefusedError(111, "refused"))
        return "stored"

    assert await store() == "stored"
    assert calls == 4 and sleeps == [0.5, 1.0, 2.0]  # backoff between attempts


async def test_a_write_gives_up_after_the_budget_and_never_retries_a_bad_statement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_sleep(_seconds: float) -> None:
        return None

    monkeypatch.setattr(db, "backoff", no_sleep)
    monkeypatch.setattr(db, "OUTAGE_BUDGET_S", 0.0)

    @outlasting_outages
    async def down() -> None:
        raise sa_exc.OperationalError("INSERT", {}, ConnectionRefusedError(111, "refused"))

    with pytest.raises(sa_exc.OperationalError):
        await down()

    calls = 0

    @outlasting_outages
    async def duplicate() -> None:
        nonlocal calls
        calls += 1
        raise sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(db, "OUTAGE_BUDGET_S", 600.0)
    with pytest.raises(sa_exc.IntegrityError):
        await duplicate()
    assert calls == 1
