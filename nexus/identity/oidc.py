"""OpenID Connect sign-in: provider discovery, ID-token verification and linking an identity to a user.

The provider is whatever `NEXUS_GOOGLE_DISCOVERY_URL` names (Google by default), so the same code signs in
against any OpenID Connect provider. The ID token is verified here, not trusted: signature against the
provider's JWKS (re-fetched once when it meets a new key id, for key rollover), issuer, audience, nonce, expiry.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from models import User, UserIdentity
from nexus.core.settings import Settings
from nexus.identity.oauth import ClientConfig, OAuthFlowError
from nexus.identity.service import create_user, get_user_by_email

SIGNIN_PROVIDER = "google"
DISCOVERY_TTL_S = 3600.0
CLOCK_SKEW_S = 60
SIGNIN_SCOPES = ("openid", "email", "profile")

_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_jwks: dict[str, KeySet] = {}


class ProviderUnavailable(Exception):
    """The identity provider could not be reached or answered nonsense."""


async def _get_json(url: str, timeout: float) -> dict[str, Any]:
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            resp = await client.get(url)
            resp.raise_for_status()
            body = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnavailable(f"{url}: {type(exc).__name__}") from exc
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"{url}: not a JSON object")
    return body


async def discover(settings: Settings) -> dict[str, Any]:
    """The provider's metadata (cached for an hour per process)."""
    url = settings.google_discovery_url
    cached = _discovery.get(url)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
        return cached[1]
    meta = await _get_json(url, settings.oauth_timeout_s)
    for field in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not meta.get(field):
            raise ProviderUnavailable(f"{url}: the discovery document has no {field}")
    _discovery[url] = (time.monotonic(), meta)
    return meta


def client_config(
    settings: Settings,
    meta: dict[str, Any],
    *,
    redirect_path: str,
    scopes: tuple[str, ...],
    extra: tuple[tuple[str, str], ...] = (),
    provider: str = SIGNIN_PROVIDER,
) -> ClientConfig:
    secret = settings.google_client_secret.get_secret_value() if settings.google_client_secret else ""
    return ClientConfig(
        provider=provider,
        client_id=settings.google_client_id or "",
        client_secret=secret,
        authorize_url=meta["authorization_endpoint"],
        token_url=meta["token_endpoint"],
        revocation_url=meta.get("revocation_endpoint"),
        redirect_uri=settings.public_base_url + redirect_path,
        scopes=scopes,
        extra_authorize_params=extra,
        timeout_s=settings.oauth_timeout_s,
    )


async def _keys(jwks_uri: str, timeout: float, *, refresh: bool = False) -> KeySet:
    if refresh or jwks_uri not in _jwks:
        _jwks[jwks_uri] = KeySet.import_key_set(await _get_json(jwks_uri, timeout))  # type: ignore[arg-type]
    return _jwks[jwks_uri]


def _header(compact: str) -> dict[str, Any]:
    try:
        header = json.loads(base64.urlsafe_b64decode(compact.split(".")[0] + "=" * (-len(compact.split(".")[0]) % 4)))
    except (ValueError, IndexError) as exc:
        raise OAuthFlowError("the ID token is not a JWT") from exc
    return header if isinstance(header, dict) else {}


def _has_kid(keys: KeySet, kid: str) -> bool:
    try:
        keys.get_by_kid(kid)
    except (ValueError, KeyError, JoseError):
        return False
    return True


async def verify_id_token(
    id_token: str, *, meta: dict[str, Any], client_id: str, nonce: str | None, timeout: float
) -> dict[str, Any]:
    """The ID token's claims, once signature, issuer, audience, nonce and expiry all check out."""
    algorithms = meta.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in algorithms if a != "none"]
    try:
        keys = await _keys(meta["jwks_uri"], timeout)
        kid = _header(id_token).get("kid")
        if kid and not _has_kid(keys, kid):
            # A key id we have not seen: the provider may have rolled its keys since we fetched them.
            keys = await _keys(meta["jwks_uri"], timeout, refresh=True)
        token = jwt.decode(id_token, keys, algorithms=algorithms)
        claims = dict(token.claims)
        jwt.JWTClaimsRegistry(
            leeway=CLOCK_SKEW_S,
            iss={"essential": True, "value": meta["issuer"]},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce or ""},
        ).validate(claims)
    except (JoseError, ValueError) as exc:
        raise OAuthFlowError(f"the ID token failed verification ({type(exc).__name__}: {exc})"[:300]) from exc
    azp = claims.get("azp")
    if isinstance(claims.get("aud"), list) and len(claims["aud"]) > 1 and azp != client_id:
        raise OAuthFlowError("the ID token was issued to another client (azp)")
    return claims


@dataclass(frozen=True)
class SignedIn:
    user: User
    created: bool


async def link_identity(session: AsyncSession, provider: str, claims: dict[str, Any]) -> SignedIn:
    """The user this identity belongs to: by provider subject first; else the user with the same *verified*
    email (linked now); else a new user.

    An unverified email signs in nobody, new accounts included: an account made from someone else's address
    would be joined by its real owner's first verified sign-in, and the two would share it. Nor does a verified
    email link a second subject of the same provider to an account: providers identify people by subject, and
    reassign addresses (a Workspace address reused after its holder left)."""
    subject = str(claims["sub"])
    email = claims.get("email")
    verified = claims.get("email_verified") in (True, "true")
    found = (
        await session.execute(
            select(User)
            .join(UserIdentity, col(UserIdentity.user_id) == User.id)
            .where(col(UserIdentity.provider) == provider, col(UserIdentity.subject) == subject)
        )
    ).scalar_one_or_none()
    if found is not None:
        if not found.is_active:
            raise OAuthFlowError("this account is disabled")
        return SignedIn(found, created=False)
    if not email:
        raise OAuthFlowError("the provider did not share an email address (ask for the `email` scope)")
    if not verified:
        raise OAuthFlowError(
            "the provider has not verified this email address: verify it with the provider, then sign in again"
        )
    existing = await get_user_by_email(session, email)
    if existing is not None and not existing.is_active:
        raise OAuthFlowError("this account is disabled")
    if existing is not None:
        other = await session.execute(
            select(func.count()).where(col(UserIdentity.user_id) == existing.id, col(UserIdentity.provider) == provider)
        )
        if other.scalar_one():
            raise OAuthFlowError(
                "this email's account signs in with another account at this provider: sign in with that one"
            )
    user = existing or await create_user(session, email, name=claims.get("name"))
    session.add(UserIdentity(user_id=user.id, provider=provider, subject=subject, email=email))
    await session.flush()
    return SignedIn(user, created=existing is None)
