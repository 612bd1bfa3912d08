"""Health, authentication, API keys and per-user isolation through the live HTTP API."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.conftest import MakeAccount


async def test_liveness_needs_no_auth(api: httpx.AsyncClient) -> None:
    resp = await api.get("/health")
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}


async def test_ready_reports_every_component(api: httpx.AsyncClient) -> None:
    resp = await api.get("/health/ready")
    assert resp.status_code == 200, resp.text
    components = resp.json()["components"]
    assert set(components) == {
        "temporal",
        "database",
        "storage",
        "queue:workflows",
        "queue:cpu",
        "queue:gpu",
        "queue:llm",
        "workers",
    }
    assert all(c["ok"] for c in components.values())
    assert "pgvector" in components["database"]["detail"]
    assert "task(s) waiting, oldest" in components["queue:gpu"]["detail"]  # the backlog, per queue


async def test_api_routes_require_a_valid_key(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    missing = await api.get("/api/me")
    assert missing.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert (await api.get("/api/me", headers={"Authorization": "Bearer nx_00000000_nope"})).status_code == 401
    assert (await api.get("/api/me", headers={"Authorization": "Basic dXNlcjpwdw=="})).status_code == 401

    account = await make_account()
    me = await api.get("/api/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json()["email"] == account.user.email

    tampered = account.token[:-2] + ("AA" if not account.token.endswith("AA") else "BB")
    assert (await api.get("/api/me", headers={"Authorization": f"Bearer {tampered}"})).status_code == 401


async def test_keys_are_listed_by_prefix_and_can_be_revoked(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    created = await api.post("/api/apikeys", json={"name": "laptop"}, headers=account.headers)
    assert created.status_code == 201
    new = created.json()
    assert new["token"].startswith(new["prefix"] + "_")

    listed = (await api.get("/api/apikeys", headers=account.headers)).json()
    assert {k["name"] for k in listed} == {"default", "laptop"}
    assert all("token" not in k and "key_hash" not in k for k in listed)

    laptop = {"Authorization": f"Bearer {new['token']}"}
    assert (await api.get("/api/me", headers=laptop)).status_code == 200
    assert (await api.delete(f"/api/apikeys/{new['id']}", headers=account.headers)).status_code == 204
    assert (await api.get("/api/me", headers=laptop)).status_code == 401
    # the other key still works
    assert (await api.get("/api/me", headers=account.headers)).status_code == 200


async def test_one_user_cannot_see_or_touch_anothers_resources(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    alice, bob = await make_account(), await make_account()
    bob_keys = (await api.get("/api/apikeys", headers=bob.headers)).json()
    alice_keys = (await api.get("/api/apikeys", headers=alice.headers)).json()
    assert {k["id"] for k in bob_keys}.isdisjoint({k["id"] for k in alice_keys})

    # Alice cannot revoke Bob's key: it does not exist for her.
    resp = await api.delete(f"/api/apikeys/{bob_keys[0]['id']}", headers=alice.headers)
    assert resp.status_code == 404
    assert (await api.get("/api/me", headers=bob.headers)).status_code == 200

    alice_ws = (await api.get("/api/workspaces", headers=alice.headers)).json()
    bob_ws = (await api.get("/api/workspaces", headers=bob.headers)).json()
    assert len(alice_ws) == 1 and alice_ws[0]["role"] == "owner"
    assert {w["id"] for w in alice_ws}.isdisjoint({w["id"] for w in bob_ws})


async def test_keys_never_reach_the_logs(
    api: httpx.AsyncClient, make_account: MakeAccount, caplog: pytest.LogCaptureFixture
) -> None:
    account = await make_account()
    with caplog.at_level(logging.DEBUG):
        await api.get("/api/me", headers=account.headers)
        await api.get(f"/api/me?token={account.token}")
        await api.get("/api/apikeys", headers=account.headers)
    # The test's own HTTP client logs its URLs; everything else here is the server side.
    server = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "GET /api/me 401" in server  # requests are logged...
    assert account.token.split("_")[-1] not in server  # ...without credentials or query strings
