"""A success answer only after the commit: the request's transaction commits before the response is sent."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from nexus.core.db import session_scope
from nexus.runtime import Runtime
from tests.conftest import MakeAccount

TRIGGER = """
CREATE OR REPLACE FUNCTION nexus_test_refuse() RETURNS trigger AS $$
BEGIN
  IF NEW.name = 'refused at commit' THEN RAISE EXCEPTION 'refused at commit time'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE CONSTRAINT TRIGGER nexus_test_refuse AFTER INSERT ON personas
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION nexus_test_refuse();
"""


async def test_a_failed_commit_is_an_error_answer_not_a_success(
    api: httpx.AsyncClient, runtime: Runtime, make_account: MakeAccount
) -> None:
    """A deferred constraint fails only at COMMIT. Had the commit run after the response (FastAPI's default
    request scope), the client would have been told 201 for a row that was never stored."""
    account = await make_account()
    async with session_scope(runtime.engine) as session:
        for statement in TRIGGER.strip().split(";\nCREATE CONSTRAINT"):
            sql = statement if statement.startswith("CREATE OR") else "CREATE CONSTRAINT" + statement
            await session.execute(text(sql))
    try:
        ok = await api.post("/api/personas", headers=account.headers, json={"name": "kept", "instruction": "x"})
        assert ok.status_code == 201
        refused = await api.post(
            "/api/personas", headers=account.headers, json={"name": "refused at commit", "instruction": "x"}
        )
        assert refused.status_code >= 500, refused.text
        names = [p["name"] for p in (await api.get("/api/personas", headers=account.headers)).json()]
        assert names == ["kept"]
    finally:
        async with session_scope(runtime.engine) as session:
            await session.execute(text("DROP TRIGGER IF EXISTS nexus_test_refuse ON personas"))
            await session.execute(text("DROP FUNCTION IF EXISTS nexus_test_refuse()"))


async def test_a_revoked_key_stops_working_as_soon_as_revocation_is_answered(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """The flaky case the old request-scoped commit produced: 204, then the key still authenticated."""
    account = await make_account()
    for _ in range(5):
        created = (await api.post("/api/apikeys", headers=account.headers, json={"name": "short-lived"})).json()
        headers = {"Authorization": f"Bearer {created['token']}"}
        assert (await api.get("/api/me", headers=headers)).status_code == 200
        assert (await api.delete(f"/api/apikeys/{created['id']}", headers=account.headers)).status_code == 204
        assert (await api.get("/api/me", headers=headers)).status_code == 401
