"""ID-token verification: only a token signed by the provider's key, for us, from it, fresh, and carrying our
nonce signs anyone in."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from nexus.identity import oidc
from nexus.identity.oauth import OAuthFlowError

ISSUER = "https://idp.test"
META = {"issuer": ISSUER, "jwks_uri": "https://idp.test/jwks", "id_token_signing_alg_values_supported": ["RS256"]}
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
STRANGER = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})


@pytest.fixture(autouse=True)
def provider_keys() -> None:
    oidc._jwks[META["jwks_uri"]] = KeySet([RSAKey.import_key(KEY.as_dict(private=False))])


def token(key: RSAKey = KEY, **changes: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": "nexus", "sub": "u1", "nonce": "n1", "iat": now, "exp": now + 300} | changes
    return jwt.encode({"alg": "RS256", "kid": "k1"}, {k: v for k, v in claims.items() if v is not None}, key)


async def verify(value: str, nonce: str = "n1") -> dict[str, Any]:
    return await oidc.verify_id_token(value, meta=META, client_id="nexus", nonce=nonce, timeout=1)


async def test_a_good_token_verifies() -> None:
    assert (await verify(token()))["sub"] == "u1"


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"iss": "https://evil.test"},
        {"exp": int(time.time()) - 3600},
        {"nonce": "replayed"},
        {"nonce": None},
        {"sub": None},
    ],
    ids=["audience", "issuer", "expired", "nonce", "no-nonce", "no-subject"],
)
async def test_a_wrong_claim_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(OAuthFlowError, match="failed verification"):
        await verify(token(**changes))


async def test_a_token_signed_by_another_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def same_keys(*_: object, **__: object) -> KeySet:  # the re-fetch on a miss finds the same keys
        return oidc._jwks[META["jwks_uri"]]

    monkeypatch.setattr(oidc, "_keys", same_keys)
    with pytest.raises(OAuthFlowError):
        await verify(token(STRANGER))


async def test_an_unsigned_token_is_refused() -> None:
    import base64
    import json

    def b64(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    now = int(time.time())
    unsigned = f"{b64({'alg': 'none'})}.{b64({'iss': ISSUER, 'aud': 'nexus', 'sub': 'u1', 'exp': now + 60})}."
    with pytest.raises(OAuthFlowError):
        await verify(unsigned)
