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


async def test_values_out_of_range_are_a_400_not_an_outage(api: httpx.AsyncClient, make_account: MakeAccount) -> None:
    """asyncpg reports a value it cannot encode (a date before year 1 once in UTC, a lone surrogate in a list) as
    an `InterfaceError`, which read as "the database is unavailable": a 503 with Retry-After, retried forever."""
    h = (await make_account()).headers
    search = '{"query": "ships", "mode": "keyword", "filters": %s}'
    bodies = {
        "before year 1 in UTC": search % '{"created_after": "0001-01-01T00:00:00+01:00"}',
        "after 9999 in UTC": search % '{"created_before": "9999-12-31T23:59:59-01:00"}',
        "lone surrogate in a tag": search % '{"tags": ["a\\ud800"]}',
    }
    answers = {
        k: await api.post("/api/search", headers=h | {"content-type": "application/json"}, content=body)
        for k, body in bodies.items()
    }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 400), {
        k: r.text for k, r in answers.items()
    }
    assert "out of range" in answers["before year 1 in UTC"].json()["detail"]
    assert "invalid Unicode" in answers["lone surrogate in a tag"].json()["detail"]
    assert not any("retry-after" in r.headers for r in answers.values())
    assert (await api.post("/api/search", headers=h, json={"query": "ships"})).status_code == 200


async def test_an_upload_whose_name_has_a_nul_byte_is_judged_by_its_content(
    api: httpx.AsyncClient, make_account: MakeAccount
) -> None:
    """`talk.mp3\\x00` named the stored original, which failed to open ("embedded null byte"): a 500."""
    h = (await make_account()).headers
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="talk.mp3\x00"\r\n'
        b"Content-Type: audio/mpeg\r\n\r\nthis is not a recording\r\n--xyz--\r\n"
    )
    resp = await api.post(
        "/api/media/upload", headers=h | {"content-type": "multipart/form-data; boundary=xyz"}, content=body
    )
    assert resp.status_code == 415 and "detail" in resp.json(), resp.text
    assert (await api.get("/api/media", headers=h)).json()["total"] == 0
