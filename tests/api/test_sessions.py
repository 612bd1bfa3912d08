"""Browser sessions: an API key exchanged for a cookie, CSRF on cookie-authenticated changes, listing and revoking
sessions, idle and absolute expiry, the audit trail, and attempt limits shared by several API processes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select, update
from sqlmodel import col

from api.app import create_app
from api.deps import CSRF_HEADER
from models import AuditLog, Session
from models.base import utcnow
from nexus.core.db import session_scope
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, overridden
from tests.harness import LiveServer


async def open_session(client: httpx.AsyncClient, token: str) -> str:
    """Sign the client in with an API key; its cookie jar now holds the session. Returns the CSRF token."""
    resp = await client.post("/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    return resp.json()["csrf_token"]


async def test_an_api_key_opens_a_cookie_session_and_changes_need_csrf_and_origin(
    live_api: LiveServer, make_account: MakeAccount
) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        resp = await browser.post("/auth/session", headers=account.headers)
        assert resp.status_code == 200
        cookies = resp.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("nexus_session="))
        assert "HttpOnly" in session_cookie and "SameSite=lax" in session_cookie
        assert "Secure" not in session_cookie  # plain http on loopback: local development
        assert any(c.startswith("nexus_csrf=") and "HttpOnly" not in c for c in cookies)
        csrf = resp.json()["csrf_token"]

        me = (await browser.get("/auth/me")).json()
        assert me["auth"] == "session" and me["csrf_token"] == csrf and me["user"]["email"] == account.user.email
        assert me["workspaces"] and me["workspaces"][0]["role"] == "owner"
        assert (await browser.get("/api/media")).status_code == 200  # reads need no token

        origin = {"Origin": live_api.url}
        missing = await browser.post("/api/apikeys", json={"name": "x"}, headers=origin)
        assert missing.status_code == 403 and CSRF_HEADER in missing.json()["detail"]
        wrong = await browser.post("/api/apikeys", json={"name": "x"}, headers={**origin, CSRF_HEADER: "0" * 64})
        assert wrong.status_code == 403
        evil = await browser.post(
            "/api/apikeys", json={"name": "x"}, headers={"Origin": "https://evil.example", CSRF_HEADER: csrf}
        )
        assert evil.status_code == 403 and "evil.example" in evil.json()["detail"]
        no_origin = await browser.post("/api/apikeys", json={"name": "x"}, headers={CSRF_HEADER: csrf})
        assert no_origin.status_code == 403 and "Origin" in no_origin.json()["detail"]
        referer = {"Referer": live_api.url + "/library", CSRF_HEADER: csrf}
        assert (await browser.post("/api/apikeys", json={"name": "x"}, headers=referer)).status_code == 201

        # An Authorization header is not something another site can make a browser send: exempt.
        assert (await browser.post("/api/apikeys", json={"name": "y"}, headers=account.headers)).status_code == 201

        # Sign out: the cookie is worthless afterwards, even if a copy was kept.
        kept = browser.cookies.get("nexus_session")
        assert (await browser.post("/auth/logout", headers={**origin, CSRF_HEADER: csrf})).status_code == 204
        assert "nexus_session" not in browser.cookies
    async with httpx.AsyncClient(base_url=live_api.url, cookies={"nexus_session": kept or ""}) as thief:
        stale = await thief.get("/auth/me")
        assert stale.status_code == 401 and "sign in again" in stale.json()["detail"]

    async with httpx.AsyncClient(base_url=live_api.url) as api:
        events = (await api.get("/api/audit", headers=account.headers)).json()
    actions = [e["action"] for e in events]
    assert {"signin", "signout", "apikey.create"} <= set(actions)
    assert all(account.token not in str(e) for e in events)


async def test_sessions_are_listed_revoked_and_expire(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount
) -> None:
    account, other = await make_account(), await make_account()
    async with (
        httpx.AsyncClient(base_url=live_api.url, headers={"User-Agent": "laptop"}) as laptop,
        httpx.AsyncClient(base_url=live_api.url, headers={"User-Agent": "phone"}) as phone,
        httpx.AsyncClient(base_url=live_api.url) as api,
    ):
        csrf = await open_session(laptop, account.token)
        await open_session(phone, account.token)
        listed = (await laptop.get("/api/sessions")).json()
        assert {s["user_agent"] for s in listed} == {"laptop", "phone"}
        assert [s["current"] for s in listed if s["user_agent"] == "laptop"] == [True]
        phone_id = next(s["id"] for s in listed if s["user_agent"] == "phone")

        # Another user cannot end it (and learns nothing: 404).
        assert (await api.delete(f"/api/sessions/{phone_id}", headers=other.headers)).status_code == 404
        assert (await phone.get("/auth/me")).status_code == 200
        headers = {"Origin": live_api.url, CSRF_HEADER: csrf}
        assert (await laptop.delete(f"/api/sessions/{phone_id}", headers=headers)).status_code == 204
        assert (await phone.get("/auth/me")).status_code == 401

        # Idle past the limit: gone. Then the absolute lifetime ends a session however active it is.
        async with session_scope(runtime.engine) as session:
            await session.execute(
                update(Session)
                .where(col(Session.user_id) == account.user.id)
                .values(last_seen_at=utcnow() - timedelta(minutes=runtime.settings.session_idle_minutes + 1))
            )
        assert (await laptop.get("/auth/me")).status_code == 401
        await open_session(laptop, account.token)
        async with session_scope(runtime.engine) as session:
            await session.execute(
                update(Session).where(col(Session.user_id) == account.user.id).values(expires_at=utcnow())
            )
        assert (await laptop.get("/auth/me")).status_code == 401
    async with session_scope(runtime.engine) as session:
        left = (await session.execute(select(Session).where(col(Session.user_id) == account.user.id))).all()
    assert left == []  # expired sessions are deleted as they are met


async def test_revoking_a_key_ends_the_sessions_opened_with_it(live_api: LiveServer, make_account: MakeAccount) -> None:
    """A leaked key's holder opened a 30-day browser session with it, which outlived the key's revocation (and
    could mint new keys)."""
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url) as api:
        leaked = (await api.post("/api/apikeys", headers=account.headers, json={"name": "ci"})).json()
        async with (
            httpx.AsyncClient(base_url=live_api.url) as attacker,
            httpx.AsyncClient(base_url=live_api.url) as owner,
        ):
            await open_session(attacker, leaked["token"])
            await open_session(owner, account.token)  # a session from another key
            assert (await attacker.get("/auth/me")).status_code == 200
            assert (await api.delete(f"/api/apikeys/{leaked['id']}", headers=account.headers)).status_code == 204
            assert (await attacker.get("/auth/me")).status_code == 401
            assert (await owner.get("/auth/me")).status_code == 200  # only that key's sessions end


async def test_signing_in_again_rotates_the_session(live_api: LiveServer, make_account: MakeAccount) -> None:
    account = await make_account()
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        await open_session(browser, account.token)
        first = browser.cookies.get("nexus_session")
        await open_session(browser, account.token)
        assert browser.cookies.get("nexus_session") != first
        assert len((await browser.get("/api/sessions")).json()) == 1
    async with httpx.AsyncClient(base_url=live_api.url, cookies={"nexus_session": first or ""}) as old:
        assert (await old.get("/auth/me")).status_code == 401


async def test_attempt_limits_hold_across_api_processes(runtime: Runtime, make_account: MakeAccount) -> None:
    """Two API apps (as two processes would) share one count in Postgres; the 429 says when to come back."""
    account = await make_account()
    apps = [create_app(runtime.settings, runtime) for _ in range(2)]
    for app in apps:
        app.state.runtime = runtime  # what the lifespan does (ASGITransport does not run it)

    def clients_from(ip: str) -> list[httpx.AsyncClient]:
        return [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(ip, 5000)), base_url="http://testserver")
            for app in apps
        ]

    def new_ip() -> str:
        n = uuid.uuid4().int
        return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250}"

    bad = {"Authorization": "Bearer nx_0000dead_wrong"}
    ip = new_ip()
    guessing, signing_in = clients_from(ip), clients_from(new_ip())
    with overridden(runtime.settings, auth_rate_limit_per_minute=3):
        answers = [(await guessing[i % 2].get("/api/media", headers=bad)).status_code for i in range(4)]
        blocked = await guessing[0].get("/api/media", headers=bad)
        # Failed keys are limited per address; a right key from that address still works (a shared NAT, or an
        # attacker beside its holder, cannot lock the holder out).
        right = await guessing[1].get("/api/media", headers=account.headers)
        sessions = [
            (await signing_in[i % 2].post("/auth/session", headers=account.headers)).status_code for i in range(4)
        ]
    for client in guessing + signing_in:
        await client.aclose()
    assert answers == [401, 401, 401, 429]
    assert blocked.status_code == 429 and 1 <= int(blocked.headers["retry-after"]) <= 60
    assert "try again" in blocked.json()["detail"]
    assert right.status_code == 200
    assert sessions == [200, 200, 200, 429]
    async with session_scope(runtime.engine) as session:
        events = (await session.execute(select(AuditLog).where(col(AuditLog.ip) == ip))).scalars().all()
    assert {(e.action, e.outcome) for e in events} == {("apikey.auth", "failure"), ("ratelimit", "denied")}

    # One key guessed at from many addresses: limited per key as well.
    key = f"Bearer nx_{uuid.uuid4().hex[:8]}_guess"
    with overridden(runtime.settings, auth_rate_limit_per_minute=3):
        spread = []
        for _ in range(4):
            [client, _other] = clients_from(new_ip())
            spread.append((await client.get("/api/media", headers={"Authorization": key})).status_code)
            await client.aclose()
            await _other.aclose()
    assert spread == [401, 401, 401, 429]

    # The same guessing at a real key's visible prefix: the guesses are refused, the key itself still works.
    target = (await make_account()).token
    with overridden(runtime.settings, auth_rate_limit_per_minute=3):
        prefixed = {"Authorization": f"Bearer {target[:11]}_wrongsecret"}
        guesses = []
        for _ in range(4):
            [client, _other] = clients_from(new_ip())
            guesses.append((await client.get("/api/media", headers=prefixed)).status_code)
            await client.aclose()
            await _other.aclose()
        [holder, _other] = clients_from(new_ip())
        held = await holder.get("/api/media", headers={"Authorization": f"Bearer {target}"})
        opened = await holder.post("/auth/session", headers={"Authorization": f"Bearer {target}"})
        await holder.aclose()
        await _other.aclose()
    assert guesses == [401, 401, 401, 429]
    assert held.status_code == 200 and opened.status_code == 200
