"""How failures below the API become answers a client can act on: never a bare 500 for something it can fix
or wait out, and never a traceback or a server path in the body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from temporalio.service import RPCError

from nexus.core.db import causes, is_bad_value, is_unavailable
from nexus.core.errors import Unavailable
from nexus.media.service import AtCapacity, Busy

log = logging.getLogger("nexus.api")
RETRY_AFTER_S = "5"

# asyncpg's names for text Postgres cannot store (a NUL byte) or a bad encoding.
_BAD_TEXT = {"CharacterNotInRepertoireError", "UntranslatableCharacterError", "InvalidTextRepresentationError"}


def _unavailable(exc: Unavailable) -> JSONResponse:
    return JSONResponse(
        {"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": RETRY_AFTER_S}
    )


async def media_busy(_request: Request, exc: Exception) -> JSONResponse:
    """The item cannot take this now (a run in progress, or a newer run replaced this one): what to do instead."""
    return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)


async def at_capacity(_request: Request, exc: Exception) -> JSONResponse:
    """The user has as many jobs in flight as they may: try again when some have finished."""
    return JSONResponse(
        {"detail": str(exc)}, status_code=status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "30"}
    )


def _bad_text() -> JSONResponse:
    return JSONResponse(
        {"detail": "the request contains text that cannot be stored (a NUL byte or invalid Unicode); remove it"},
        status_code=status.HTTP_400_BAD_REQUEST,
    )


async def database_error(_request: Request, exc: Exception) -> JSONResponse:
    orig = getattr(exc, "orig", None)
    chain = causes(exc)
    if {type(e).__name__ for e in chain} & _BAD_TEXT or any(isinstance(e, UnicodeEncodeError) for e in chain):
        return _bad_text()
    if is_bad_value(exc):
        log.info("rejected a value the database cannot take: %s", type(chain[-1]).__name__)
        return JSONResponse(
            {
                "detail": "a value in the request is out of range or too long to store "
                "(a date before year 1 or after 9999, a number too large, a text longer than its field allows)"
            },
            status_code=status.HTTP_400_BAD_REQUEST,
        )
    if is_unavailable(exc):
        log.warning("database unavailable: %s", type(orig or exc).__name__)
        return _unavailable(Unavailable("the database"))
    log.exception("database error")
    return JSONResponse({"detail": "internal database error"}, status_code=500)


async def unencodable_text(_request: Request, _exc: Exception) -> JSONResponse:
    return _bad_text()


async def connection_refused(_request: Request, _exc: Exception) -> JSONResponse:
    return _unavailable(Unavailable("the database"))


async def dependency_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s", exc)
    assert isinstance(exc, Unavailable)  # registered for Unavailable only
    return _unavailable(exc)


async def temporal_error(_request: Request, exc: Exception) -> JSONResponse:
    """An RPC error no domain service translated: Temporal could not answer, which the client can wait out."""
    return await dependency_unavailable(_request, Unavailable("Temporal", getattr(exc, "message", str(exc))))


def install(app: FastAPI) -> None:
    app.add_exception_handler(Unavailable, dependency_unavailable)
    app.add_exception_handler(Busy, media_busy)
    app.add_exception_handler(AtCapacity, at_capacity)
    app.add_exception_handler(RPCError, temporal_error)
    app.add_exception_handler(sa_exc.DBAPIError, database_error)
    app.add_exception_handler(sa_exc.TimeoutError, database_error)  # pool exhausted: shed load, do not fail
    app.add_exception_handler(UnicodeEncodeError, unencodable_text)  # lone surrogates in a parameter
    app.add_exception_handler(ConnectionRefusedError, connection_refused)
