"""The providers an integration can connect to, and where their endpoints are.

Everything comes from settings, so tests (and self-hosters behind a proxy) point them anywhere: Spotify's URLs
directly; Google's from its OpenID discovery document (the same one sign-in uses) plus the API base for Drive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from nexus.core.settings import Settings
from nexus.identity import oidc
from nexus.identity.oauth import ClientConfig

PROVIDERS = ("google", "spotify")


class ProviderNotConfigured(LookupError):
    """This deployment has no client registration for the provider; the message says which settings to set."""


@dataclass(frozen=True)
class Provider:
    name: str
    config: ClientConfig
    profile_url: str
    api_url: str
    # Spotify refresh tokens die 6 months after issue, however often they are used.
    refresh_token_lifetime: timedelta | None = None

    def account(self, profile: dict[str, Any]) -> tuple[str, str | None]:
        """(account id, email) from the provider's profile answer."""
        account_id = profile.get("id") or profile.get("sub")
        if not account_id:
            raise ValueError("the provider's profile has no account id")
        return str(account_id), profile.get("email")


def available(settings: Settings) -> list[str]:
    """The providers these settings can connect (their client ids are set)."""
    ids = {"google": settings.google_client_id, "spotify": settings.spotify_client_id}
    return [name for name in PROVIDERS if ids[name]]


def callback_path(name: str) -> str:
    return f"/api/integrations/{name}/callback"


async def get_provider(settings: Settings, name: str) -> Provider:
    if name == "spotify":
        if not settings.spotify_client_id:
            raise ProviderNotConfigured(
                "Spotify is not configured: set NEXUS_SPOTIFY_CLIENT_ID and NEXUS_SPOTIFY_CLIENT_SECRET "
                "(the app's redirect URI must be https, or http://127.0.0.1:PORT, not localhost)"
            )
        secret = settings.spotify_client_secret.get_secret_value() if settings.spotify_client_secret else ""
        config = ClientConfig(
            provider="spotify",
            client_id=settings.spotify_client_id,
            client_secret=secret,
            authorize_url=settings.spotify_authorize_url,
            token_url=settings.spotify_token_url,
            revocation_url=None,  # Spotify has none: the user removes the app at spotify.com/account/apps
            redirect_uri=settings.public_base_url + callback_path("spotify"),
            scopes=tuple(settings.spotify_scopes),
            timeout_s=settings.oauth_timeout_s,
        )
        api = settings.spotify_api_url.rstrip("/")
        return Provider("spotify", config, api + "/v1/me", api, refresh_token_lifetime=timedelta(days=180))
    if name == "google":
        if not settings.google_client_id:
            raise ProviderNotConfigured(
                "Google is not configured: set NEXUS_GOOGLE_CLIENT_ID and NEXUS_GOOGLE_CLIENT_SECRET"
            )
        try:
            meta = await oidc.discover(settings)
        except oidc.ProviderUnavailable as exc:
            from nexus.core.errors import Unavailable

            raise Unavailable("Google's sign-in service", str(exc)) from exc
        config = oidc.client_config(
            settings,
            meta,
            redirect_path=callback_path("google"),
            scopes=(*oidc.SIGNIN_SCOPES, *settings.google_scopes),
            # A refresh token (offline), on every consent (prompt), keeping scopes granted before (incremental).
            extra=(("access_type", "offline"), ("prompt", "consent"), ("include_granted_scopes", "true")),
            provider="google",
        )
        userinfo = meta.get("userinfo_endpoint") or "https://openidconnect.googleapis.com/v1/userinfo"
        return Provider("google", config, userinfo, settings.google_api_url.rstrip("/"))
    raise ProviderNotConfigured(f"unknown provider {name!r}: one of {', '.join(PROVIDERS)}")
