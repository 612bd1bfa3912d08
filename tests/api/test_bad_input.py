"""Input that used to reach Postgres raw, and the headers every answer carries (hardening items 16 and 18)."""

from __future__ import annotations

import httpx

from tests.conftest import MakeAccount


async def test_text_postgres_cannot_store_is_a_400_not_a_500(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    h = account.headers
    answers = {
        "persona": await api.post("/api/personas", headers=h, json={"name": "a\x00b", "instruction": "x"}),
        "search": await api.post("/api/search", headers=h, json={"query": "ships\x00", "mode": "keyword"}),
        "key name": await api.post("/api/apikeys", headers=h, json={"name": "k\x00"}),
        "?q=": await api.get("/api/media", headers=h, params={"q": "a\x00"}),
        "?tag=": await api.get("/api/media", headers=h, params={"tag": "t\x00"}),
    }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 400)
    assert all("NUL byte" in r.json()["detail"] for r in answers.values())
    # Nothing was half-written.
    assert (await api.get("/api/personas", headers=h)).json() == []


async def test_absurd_offsets_are_rejected_with_a_reason(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    resp = await api.get("/api/media", headers=account.headers, params={"offset": "99999999999999999999"})
    assert resp.status_code == 422 and "offset" in resp.text


async def test_security_headers(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    account = await make_account()
    me = await api.get("/api/me", headers=account.headers)
    assert me.headers["x-content-type-options"] == "nosniff"
    assert me.headers["cache-control"] == "no-store"
    assert me.headers["referrer-policy"] == "no-referrer"
    docs = await api.get("/docs")
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
