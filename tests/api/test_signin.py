"""Sign-in with OpenID Connect against real providers on loopback: `oidc-provider-mock` (a real OIDC provider) and
the Authlib-assembled provider in tests/oauth_provider.py (which, unlike the mock, verifies PKCE). Every refusal
creates no session and leaves an audit event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from oidc_provider_mock import User as MockUser
from oidc_provider_mock import run_server_in_thread
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlmodel import col

from models import AuditLog, Session, User, UserIdentity
from nexus.core.db import session_scope
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, overridden
from tests.harness import LiveServer
from tests.oauth_provider import OAuthProvider

ALICE = f"alice-{uuid.uuid4().hex[:6]}@example.com"


@pytest.fixture(scope="module")
def oidc_mock() -> Iterator[str]:
    claims = {"email": ALICE, "email_verified": True, "name": "Alice"}
    users = [
        MockUser(sub="alice", claims=claims),
        MockUser(sub="alice-reassigned", claims=claims),  # the same address, now someone else's at the provider
    ]
    with run_server_in_thread(require_nonce=True, user_claims=users) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@pytest.fixture
async def signin(runtime: Runtime, live_api: LiveServer, oidc_mock: str) -> AsyncIterator[str]:
    """Sign-in configured against the mock provider; yields the frontend URL browsers land on."""
    frontend = live_api.url + "/app"
    with overridden(
        runtime.settings,
        google_client_id="nexus-web",
        google_client_secret=SecretStr("web-secret"),
        google_discovery_url=oidc_mock + "/.well-known/openid-configuration",
        frontend_url=frontend,
    ):
        yield frontend


async def start(browser: httpx.AsyncClient, next: str | None = None) -> httpx.Response:
    return await browser.get("/auth/google/start", params={"next": next} if next else None)


async def approve(authorize_url: str, sub: str = "alice", action: str | None = None) -> str:
    """The user approves at the provider; returns the callback URL the provider redirects to."""
    async with httpx.AsyncClient() as at_provider:
        data = {"sub": sub} | ({"action": action} if action else {})
        resp = await at_provider.post(authorize_url, data=data)
    assert resp.status_code == 302, resp.text
    return resp.headers["location"]


async def sessions_of(runtime: Runtime, email: str) -> int:
    async with session_scope(runtime.engine) as session:
        return (
            await session.execute(
                select(func.count()).select_from(Session).join(User, col(User.id) == Session.user_id)
                .where(col(User.email) == email)
            )
        ).scalar_one()  # fmt: skip


async def test_sign_in_creates_the_user_then_signs_the_same_user_in(
    live_api: LiveServer, runtime: Runtime, signin: str
) -> None:
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        begun = await start(browser, next="/library?tab=all")
        assert begun.status_code == 302
        query = parse_qs(urlsplit(begun.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
        assert query["scope"] == ["openid email profile"] and "code_verifier" not in query
        flow_cookie = next(c for c in begun.headers.get_list("set-cookie") if c.startswith("nexus_oauth="))
        assert "HttpOnly" in flow_cookie and "Max-Age=600" in flow_cookie

        landed = await browser.get(await approve(begun.headers["location"]))
        assert landed.status_code == 302 and landed.headers["location"] == signin + "/library?tab=all"
        me = (await browser.get("/auth/me")).json()
        assert me["user"]["email"] == ALICE and me["user"]["name"] == "Alice" and me["auth"] == "session"

        # Again, in the same browser: the same user, and the session is replaced rather than added.
        again = await browser.get(await approve((await start(browser)).headers["location"]))
        assert again.headers["location"] == signin + "/"
        assert (await browser.get("/auth/me")).json()["user"]["id"] == me["user"]["id"]
    assert await sessions_of(runtime, ALICE) == 1
    async with session_scope(runtime.engine) as session:
        identities = (await session.execute(select(UserIdentity).where(col(UserIdentity.email) == ALICE))).all()
    assert len(identities) == 1


async def test_an_unverified_email_never_links_to_an_existing_account(
    live_api: LiveServer, runtime: Runtime, make_account: MakeAccount, signin: str
) -> None:
    email = f"bob-{uuid.uuid4().hex[:6]}@example.com"
    await make_account(email)
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        # A subject the mock does not know: it claims the sub itself as the email, unverified. Nobody can take
        # over an account by claiming its address at some provider.
        refused = await browser.get(await approve((await start(browser)).headers["location"], sub=email))
    assert refused.status_code == 400 and "not verified" in refused.json()["detail"]
    assert await sessions_of(runtime, email) == 0


async def test_an_unverified_email_creates_no_account_for_its_owner_to_join_later(
    live_api: LiveServer, runtime: Runtime, signin: str
) -> None:
    """An attacker claiming someone's address unverified made an account the real owner's verified sign-in then
    joined: both in one account, the attacker reading what the owner uploads."""
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        refused = await browser.get(await approve((await start(browser)).headers["location"], sub=victim))
    assert refused.status_code == 400 and "not verified" in refused.json()["detail"]
    async with session_scope(runtime.engine) as session:
        assert (await session.execute(select(func.count()).where(col(User.email) == victim))).scalar_one() == 0


async def test_a_second_subject_with_the_same_email_does_not_join_the_account(
    live_api: LiveServer, runtime: Runtime, signin: str
) -> None:
    """Providers identify people by subject and reassign addresses: a new subject with a verified address that
    already signs in under another subject is refused, not linked to that account."""
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        first = await browser.get(await approve((await start(browser)).headers["location"], sub="alice"))
        assert first.status_code == 302
    before = await sessions_of(runtime, ALICE)
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        callback = await approve((await start(browser)).headers["location"], sub="alice-reassigned")
        refused = await browser.get(callback)
    assert refused.status_code == 400 and "another account at this provider" in refused.json()["detail"]
    assert await sessions_of(runtime, ALICE) == before


async def test_every_tampering_is_refused_without_a_session(
    live_api: LiveServer, runtime: Runtime, signin: str
) -> None:
    before = await sessions_of(runtime, ALICE)
    async with httpx.AsyncClient(base_url=live_api.url) as browser:
        callback = await approve((await start(browser)).headers["location"])
        parts = urlsplit(callback)
        code, state = parse_qs(parts.query)["code"][0], parse_qs(parts.query)["state"][0]

        forged = await browser.get("/auth/google/callback", params={"code": code, "state": state + "x"})
        assert forged.status_code == 400 and "unknown or already used" in forged.json()["detail"]

        async with httpx.AsyncClient(base_url=live_api.url) as other_browser:  # no flow cookie
            stolen = await other_browser.get(callback)
        assert stolen.status_code == 400 and "another browser" in stolen.json()["detail"]
        # The attempt from another browser used the state up: the real callback now fails too (single use).
        replayed = await browser.get(callback)
        assert replayed.status_code == 400 and "already used" in replayed.json()["detail"]

        denied = await browser.get(await approve((await start(browser)).headers["location"], action="deny"))
        assert denied.status_code == 400 and "access_denied" in denied.json()["detail"]

        used = await approve((await start(browser)).headers["location"])
        assert (await browser.get(used)).status_code == 302
        assert (await browser.get(used)).status_code == 400  # a replayed code and state

        for target in (
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "javascript:alert(1)",
            "/" + "a" * 2100,
        ):
            resp = await start(browser, next=target)
            assert resp.status_code == 400 and "next" in resp.json()["detail"], target
    assert await sessions_of(runtime, ALICE) == before + 1  # the one good sign-in
    async with session_scope(runtime.engine) as session:
        failures = (
            await session.execute(
                select(AuditLog).where(col(AuditLog.action) == "signin", col(AuditLog.outcome) == "failure")
            )
        ).scalars().all()  # fmt: skip
    assert len(failures) >= 5
    assert all(code not in str(f.details) and state not in str(f.details) for f in failures)


async def test_sign_in_against_a_provider_that_checks_pkce(live_api: LiveServer, runtime: Runtime) -> None:
    email = f"carol-{uuid.uuid4().hex[:6]}@example.com"
    with OAuthProvider(client_id="nexus-web", user={"id": "carol", "email": email, "name": "Carol"}) as provider:
        settings = {
            "google_client_id": "nexus-web",
            "google_client_secret": SecretStr(provider.client_secret),
            "google_discovery_url": provider.discovery_url,
        }
        with overridden(runtime.settings, **settings):
            async with httpx.AsyncClient(base_url=live_api.url) as browser:
                begun = await start(browser)
                async with httpx.AsyncClient() as at_provider:
                    callback = (await at_provider.get(begun.headers["location"])).headers["location"]
                assert (await browser.get(callback)).status_code == 302
                assert (await browser.get("/auth/me")).json()["user"]["email"] == email
        assert [r["grant_type"] for r in provider.token_requests] == ["authorization_code"]


async def test_unconfigured_sign_in_says_what_to_do(api: httpx.AsyncClient) -> None:
    resp = await api.get("/auth/google/start")
    assert resp.status_code == 404 and "NEXUS_GOOGLE_CLIENT_ID" in resp.json()["detail"]
    assert "POST /auth/session" in resp.json()["detail"]


async def test_a_flow_whose_verifier_no_longer_opens_is_refused_not_a_500(
    live_api: LiveServer, runtime: Runtime, signin: str
) -> None:
    """Its key dropped mid-flow, or the row tampered with: the callback says to start again."""
    from sqlalchemy import text

    async with httpx.AsyncClient(base_url=live_api.url) as first, httpx.AsyncClient(base_url=live_api.url) as second:
        mine = await approve((await start(first)).headers["location"])
        await start(second)
        async with session_scope(runtime.engine) as session:  # the second flow's sealed verifier, moved to the first
            rows = (
                await session.execute(
                    text("SELECT id, code_verifier FROM oauth_states ORDER BY created_at DESC LIMIT 2")
                )
            ).all()
            (_, theirs), (my_id, _) = rows
            await session.execute(
                text("UPDATE oauth_states SET code_verifier = :v WHERE id = :id"), {"v": theirs, "id": my_id}
            )
        refused = await first.get(mine)
    assert refused.status_code == 400 and "start again" in refused.json()["detail"]
