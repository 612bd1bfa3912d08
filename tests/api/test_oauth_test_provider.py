"""Self-check of the loopback OAuth/OIDC provider in tests/oauth_provider.py (httpx only, no product code)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.oauth_provider import OAuthProvider

REDIRECT_URI = "http://127.0.0.1:9/callback"


@pytest.fixture(scope="module")
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider() as p:
        yield p


@pytest.fixture
def http(provider: OAuthProvider) -> Iterator[httpx.Client]:
    provider.rotate_refresh_tokens = True
    provider.access_token_ttl = 3600
    provider.user = {"id": f"user-{secrets.token_hex(4)}", "email": "u@example.com", "name": "U"}
    with httpx.Client(timeout=10) as client:
        yield client


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def _authorize(http: httpx.Client, provider: OAuthProvider, scope: str = "user-read-email", **extra: str) -> tuple:
    verifier, challenge = _pkce()
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "st-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "access_type": "offline",
        "prompt": "consent",
        **extra,
    }
    resp = http.get(provider.authorize_url, params=params)
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(REDIRECT_URI)
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st-1"]
    return query["code"][0], verifier


def _token(http: httpx.Client, provider: OAuthProvider, data: dict, *, secret: str | None = None) -> httpx.Response:
    auth = (provider.client_id, secret or provider.client_secret)
    return http.post(provider.token_url, data=data, auth=auth)


def _login(http: httpx.Client, provider: OAuthProvider, scope: str = "user-read-email", **extra: str) -> dict:
    code, verifier = _authorize(http, provider, scope, **extra)
    resp = _token(
        http,
        provider,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _refresh(http: httpx.Client, provider: OAuthProvider, refresh_token: str) -> httpx.Response:
    # client_secret_post here, client_secret_basic elsewhere
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": provider.client_id,
        "client_secret": provider.client_secret,
    }
    return http.post(provider.token_url, data=data)


def test_authorization_code_with_pkce(http: httpx.Client, provider: OAuthProvider) -> None:
    code, verifier = _authorize(http, provider)
    wrong = _token(
        http,
        provider,
        {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": "x" * 50},
    )
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    tokens = _login(http, provider)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["refresh_token"]
    assert provider.valid_access_token(tokens["access_token"])
    assert tokens["access_token"] in provider.issued_access_tokens()
    assert tokens["refresh_token"] in provider.issued_refresh_tokens()

    # the code is single-use; the redirect_uri must match the authorize request
    code, verifier = _authorize(http, provider)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    assert _token(http, provider, {**data, "redirect_uri": "http://127.0.0.1:9/other"}).status_code == 400
    assert _token(http, provider, {**data, "redirect_uri": REDIRECT_URI}).status_code == 200
    assert _token(http, provider, {**data, "redirect_uri": REDIRECT_URI}).json()["error"] == "invalid_grant"

    # PKCE is required, and the client secret is checked
    resp = http.get(
        provider.authorize_url,
        params={"response_type": "code", "client_id": provider.client_id, "redirect_uri": REDIRECT_URI},
    )
    assert resp.status_code == 302
    assert parse_qs(urlsplit(resp.headers["location"]).query)["error"] == ["invalid_request"]
    code, verifier = _authorize(http, provider)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    bad = _token(http, provider, data, secret="wrong")
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"


def test_refresh_rotates_and_old_token_fails(http: httpx.Client, provider: OAuthProvider) -> None:
    tokens = _login(http, provider)
    resp = _refresh(http, provider, tokens["refresh_token"])
    assert resp.status_code == 200, resp.text
    new = resp.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert new["access_token"] != tokens["access_token"]
    again = _refresh(http, provider, tokens["refresh_token"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert provider.token_requests[-1]["refresh_token_in"] == tokens["refresh_token"]
    assert provider.token_requests[-1]["status"] == 400

    # without rotation (Google): no new refresh token, the old one keeps working
    provider.rotate_refresh_tokens = False
    provider.access_token_ttl = 0.2
    first = _refresh(http, provider, new["refresh_token"]).json()
    assert "refresh_token" not in first
    assert first["expires_in"] == 1
    second = _refresh(http, provider, new["refresh_token"])
    assert second.status_code == 200
    assert provider.valid_access_token(second.json()["access_token"])


def test_fail_next_and_revoke_user(http: httpx.Client, provider: OAuthProvider) -> None:
    tokens = _login(http, provider)
    provider.fail_next(1, 429, retry_after=3)
    resp = _refresh(http, provider, tokens["refresh_token"])
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "3"
    provider.fail_next(1, 400, error="invalid_grant")
    resp = _refresh(http, provider, tokens["refresh_token"])
    assert (resp.status_code, resp.json()) == (400, {"error": "invalid_grant"})
    assert [r["status"] for r in provider.token_requests[-2:]] == [429, 400]

    resp = _refresh(http, provider, tokens["refresh_token"])
    assert resp.status_code == 200
    access = resp.json()["access_token"]
    provider.revoke_user(provider.user["id"])
    resp = _refresh(http, provider, resp.json()["refresh_token"])
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"
    me = http.get(provider.api_url + "/v1/me", headers={"Authorization": f"Bearer {access}"})
    assert me.status_code == 401
    assert not provider.valid_access_token(access)


def test_resource_api(http: httpx.Client, provider: OAuthProvider) -> None:
    tokens = _login(http, provider)
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    me = http.get(provider.api_url + "/v1/me", headers=auth)
    assert me.status_code == 200
    assert me.json() == {"id": provider.user["id"], "email": "u@example.com", "display_name": "U"}
    info = http.get(provider.userinfo_url, headers=auth).json()
    assert info == {"sub": provider.user["id"], "email": "u@example.com", "email_verified": True, "name": "U"}

    missing = http.get(provider.api_url + "/v1/me")
    assert missing.status_code == 401
    assert "www-authenticate" in missing.headers
    assert http.get(provider.api_url + "/v1/me", headers={"Authorization": "Bearer nope"}).status_code == 401
    provider.api_fail_next_401(1)
    forced = http.get(provider.api_url + "/v1/me", headers=auth)
    assert forced.status_code == 401
    assert "invalid_token" in forced.headers["www-authenticate"]
    assert http.get(provider.api_url + "/v1/me", headers=auth).status_code == 200

    provider.files["f1"] = ("notes.txt", "text/plain", b"hello drive")
    url = provider.api_url + "/drive/v3/files/f1"
    assert http.get(url, headers=auth).json() == {
        "id": "f1",
        "name": "notes.txt",
        "mimeType": "text/plain",
        "size": "11",
    }
    media = http.get(url, params={"alt": "media"}, headers=auth)
    assert (media.content, media.headers["content-type"]) == (b"hello drive", "text/plain")
    part = http.get(url, params={"alt": "media"}, headers={**auth, "Range": "bytes=6-"})
    assert (part.status_code, part.content) == (206, b"drive")
    assert http.get(provider.api_url + "/drive/v3/files/nope", headers=auth).status_code == 404
    assert http.get(url).status_code == 401


def test_id_token_verifies_against_jwks(http: httpx.Client, provider: OAuthProvider) -> None:
    config = http.get(provider.discovery_url).json()
    assert config["issuer"] == provider.url
    assert config["code_challenge_methods_supported"] == ["S256"]
    tokens = _login(http, provider, scope="openid email profile", nonce="n-123", include_granted_scopes="true")
    keys = KeySet.import_key_set(http.get(config["jwks_uri"]).json())
    token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": provider.url},
        aud={"essential": True, "value": provider.client_id},
        nonce={"essential": True, "value": "n-123"},
        sub={"essential": True, "value": provider.user["id"]},
        exp={"essential": True},
    ).validate(token.claims)
    assert token.claims["email"] == "u@example.com"
    assert token.claims["email_verified"] is True
    assert "id_token" not in _login(http, provider, scope="user-read-email")


def test_revocation_endpoint(http: httpx.Client, provider: OAuthProvider) -> None:
    tokens = _login(http, provider)
    auth = (provider.client_id, provider.client_secret)
    resp = http.post(provider.revocation_url, data={"token": tokens["access_token"]}, auth=auth)
    assert resp.status_code == 200
    assert tokens["access_token"] in provider.revoked
    assert not provider.valid_access_token(tokens["access_token"])
    assert _refresh(http, provider, tokens["refresh_token"]).status_code == 200

    tokens = _login(http, provider)
    data = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    assert http.post(provider.revocation_url, data=data, auth=auth).status_code == 200
    assert _refresh(http, provider, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert not provider.valid_access_token(tokens["access_token"])
    assert http.post(provider.revocation_url, data=data, auth=(provider.client_id, "wrong")).status_code == 401
