"""A real OAuth 2.0 / OpenID Connect authorization server for tests, served on loopback from a thread.

It is assembled from Authlib's server components (Flask ``AuthorizationServer``, ``ResourceProtector``,
``AuthorizationCodeGrant``, ``RefreshTokenGrant``, PKCE ``CodeChallenge``, RFC 7009 ``RevocationEndpoint`` and
OpenID Connect ``OpenIDCode``); this module only supplies storage, knobs and observations. It plays Spotify
(``/v1/me``) and Google (``/oauth2/v3/userinfo``, ``/drive/v3/files/<id>``) for the product's tests and benchmark.

Usage::

    with OAuthProvider() as provider:
        provider.authorize_url, provider.token_url, ...

All state is in memory behind one lock; the server is threaded (one thread per connection).
"""

from __future__ import annotations

import itertools
import math
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import ClientMixin, InvalidRequestError, TokenMixin, grants
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, UserInfo
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, Response, jsonify, request
from joserfc.jwk import RSAKey
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["OAuthProvider"]

DEFAULT_USER = {"id": "user-1", "email": "user1@example.com", "name": "User One"}
AUTHORIZATION_CODE_TTL = 600.0
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


# --------------------------------------------------------------------------- models (Authlib mixins)


@dataclass(eq=False)
class _Client(ClientMixin):
    client_id: str
    client_secret: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the client must send redirect_uri

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""  # any requested scope is granted

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return True  # loopback tests use random ports; the token request must repeat it (Authlib checks)

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS  # confidential client: never "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(eq=False)
class _AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    user: dict[str, Any]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass(eq=False)
class _Token(TokenMixin):
    """Common part of access and refresh tokens. ``family`` groups all tokens of one authorization."""

    token: str
    client: _Client
    user: dict[str, Any]
    scope: str
    family: int
    issued_at: float = field(default_factory=time.time)
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0

    def is_expired(self) -> bool:
        return False

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> dict[str, Any]:
        return self.user

    def get_client(self) -> _Client:
        return self.client


@dataclass(eq=False)
class _RefreshToken(_Token):
    pass


@dataclass(eq=False)
class _AccessToken(_Token):
    expires_at: float = 0.0
    expires_in: int = 0

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


# --------------------------------------------------------------------------- Authlib components


class _Server(AuthorizationServer):
    """Flask AuthorizationServer that knows its provider (grants reach it via ``self.server.provider``)."""

    def __init__(self, app: Flask, provider: OAuthProvider) -> None:
        self.provider = provider
        super().__init__(app, query_client=provider._query_client, save_token=provider._save_token)


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        provider: OAuthProvider = self.server.provider
        data = request.payload.data
        provider._codes[code] = _AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            user=request.user,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=int(time.time()),
            expires_at=time.time() + AUTHORIZATION_CODE_TTL,
        )

    def query_authorization_code(self, code: str, client: ClientMixin) -> _AuthorizationCode | None:
        item = self.server.provider._codes.get(code)
        if item and item.client_id == client.get_client_id() and time.time() < item.expires_at:
            return item
        return None

    def delete_authorization_code(self, authorization_code: _AuthorizationCode) -> None:
        self.server.provider._codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: _AuthorizationCode) -> dict[str, Any]:
        return authorization_code.user


class _RefreshTokenGrant(grants.RefreshTokenGrant):
    # BaseGrant only allows client_secret_basic; Google/Spotify clients also use client_secret_post.
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> _RefreshToken | None:
        item = self.server.provider._refresh_tokens.get(refresh_token)
        if item and not item.revoked:
            return item
        return None

    def authenticate_user(self, refresh_token: _RefreshToken) -> dict[str, Any]:
        return refresh_token.user

    def issue_token(self, user: dict[str, Any], refresh_token: _RefreshToken) -> dict[str, Any]:
        # INCLUDE_NEW_REFRESH_TOKEN is a class constant in Authlib; the knob is per request here.
        self._rotate = self.server.provider.rotate_refresh_tokens
        scope = self.request.payload.scope or refresh_token.get_scope()
        return self.generate_token(user=user, scope=scope, include_refresh_token=self._rotate)

    def revoke_old_credential(self, refresh_token: _RefreshToken) -> None:
        if getattr(self, "_rotate", False):
            refresh_token.revoked = True


class _S256Required(CodeChallenge):
    """PKCE, required for every authorization request (Authlib's ``required=True`` only forces public clients)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE 'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class _OpenIDCode(OpenIDCode):
    def __init__(self, provider: OAuthProvider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        assert self.provider._key is not None
        return self.provider._key

    def get_client_algorithm(self, client: _Client) -> str:
        return "RS256"

    def get_encode_header(self, client: _Client) -> dict[str, str]:
        assert self.provider._key is not None
        return {"alg": "RS256", "kid": self.provider._key.kid or "", "typ": "JWT"}

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        return {"iss": self.provider.url, "aud": client.get_client_id(), "azp": client.get_client_id()}

    def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
        return UserInfo(sub=user["id"], email=user.get("email"), email_verified=True, name=user.get("name"))


class _Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        provider: OAuthProvider = self.server.provider
        access = provider._access_tokens.get(token_string)
        refresh = provider._refresh_tokens.get(token_string)
        if token_type_hint == "refresh_token":
            return refresh or access
        return access or refresh

    def revoke_token(self, token: _Token, request: Any) -> None:
        provider: OAuthProvider = self.server.provider
        provider.revoked.append(token.token)
        if isinstance(token, _RefreshToken):
            # RFC 7009 2.1: revoking a refresh token also invalidates the access tokens of the same grant.
            for item in itertools.chain(provider._refresh_tokens.values(), provider._access_tokens.values()):
                if item.family == token.family:
                    item.revoked = True
        token.revoked = True


class _BearerValidator(BearerTokenValidator):
    def __init__(self, provider: OAuthProvider) -> None:
        super().__init__()
        self.provider = provider

    def authenticate_token(self, token_string: str) -> _AccessToken | None:
        with self.provider._lock:
            return self.provider._access_tokens.get(token_string)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


# --------------------------------------------------------------------------- the provider


class OAuthProvider:
    """A loopback OAuth 2.0 / OpenID Connect provider with knobs for failure injection."""

    def __init__(
        self,
        *,
        client_id: str = "nexus-test",
        client_secret: str = "nexus-secret",
        access_token_ttl: float = 3600,
        rotate_refresh_tokens: bool = True,
        user: dict | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        # knobs
        self.access_token_ttl: float = access_token_ttl
        self.rotate_refresh_tokens: bool = rotate_refresh_tokens
        self.token_delay: float = 0.0
        self.user: dict = dict(user or DEFAULT_USER)
        self.files: dict[str, tuple[str, str, bytes]] = {}
        # observations
        self.token_requests: list[dict] = []
        self.revoked: list[str] = []
        self.max_concurrent_token_requests: int = 0
        # state
        self._lock = threading.RLock()
        self._client = _Client(client_id, client_secret)
        self._codes: dict[str, _AuthorizationCode] = {}
        self._access_tokens: dict[str, _AccessToken] = {}
        self._refresh_tokens: dict[str, _RefreshToken] = {}
        self._families = itertools.count(1)
        self._in_flight = 0
        self._token_failures: list[tuple[int, int | None, str | None]] = []
        self._api_failures = 0
        self._key: RSAKey | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self._app = self._build_app()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> OAuthProvider:
        if self._server is not None:
            return self
        self._key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"})
        server = make_server("127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler)
        server.socket.listen(4096)  # werkzeug's backlog is 128; the benchmark opens ~1000 connections at once
        self._server = server
        self.url = f"http://127.0.0.1:{server.port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="oauth-provider", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> OAuthProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ endpoints

    @property
    def api_url(self) -> str:
        return self.url

    @property
    def authorize_url(self) -> str:
        return self.url + "/authorize"

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def revocation_url(self) -> str:
        return self.url + "/revoke"

    @property
    def discovery_url(self) -> str:
        return self.url + "/.well-known/openid-configuration"

    @property
    def userinfo_url(self) -> str:
        return self.url + "/oauth2/v3/userinfo"

    @property
    def jwks_url(self) -> str:
        return self.url + "/jwks"

    # ------------------------------------------------------------------ knobs

    def fail_next(self, n: int, status: int, *, retry_after: int | None = None, error: str | None = None) -> None:
        """The next ``n`` token-endpoint requests answer ``status`` (body ``{"error": error}`` if given)."""
        with self._lock:
            self._token_failures.extend([(status, retry_after, error)] * n)

    def revoke_user(self, user_id: str) -> None:
        """Revoke every token of ``user_id``: refresh -> 400 invalid_grant, API -> 401."""
        with self._lock:
            for item in itertools.chain(self._refresh_tokens.values(), self._access_tokens.values()):
                if item.user.get("id") == user_id:
                    item.revoked = True
            for code in [c for c, item in self._codes.items() if item.user.get("id") == user_id]:
                del self._codes[code]

    def api_fail_next_401(self, n: int) -> None:
        with self._lock:
            self._api_failures += n

    # ------------------------------------------------------------------ observations

    def issued_access_tokens(self) -> list[str]:
        with self._lock:
            return list(self._access_tokens)

    def issued_refresh_tokens(self) -> list[str]:
        with self._lock:
            return list(self._refresh_tokens)

    def valid_access_token(self, token: str) -> bool:
        with self._lock:
            item = self._access_tokens.get(token)
            return bool(item and not item.revoked and not item.is_expired())

    # ------------------------------------------------------------------ Authlib storage callbacks

    def _query_client(self, client_id: str) -> _Client | None:
        return self._client if client_id == self._client.client_id else None

    def _expires_in(self, client: _Client, grant_type: str) -> int:
        return max(1, math.floor(self.access_token_ttl))

    def _save_token(self, token: dict[str, Any], request: Any) -> None:
        now = time.time()
        parent: _RefreshToken | None = request.refresh_token
        family = parent.family if parent is not None else next(self._families)
        user, client, scope = request.user, request.client, token.get("scope", "")
        self._access_tokens[token["access_token"]] = _AccessToken(
            token=token["access_token"],
            client=client,
            user=user,
            scope=scope,
            family=family,
            issued_at=now,
            expires_at=now + float(self.access_token_ttl),
            expires_in=int(token.get("expires_in", 0)),
        )
        if "refresh_token" in token:
            self._refresh_tokens[token["refresh_token"]] = _RefreshToken(
                token=token["refresh_token"], client=client, user=user, scope=scope, family=family, issued_at=now
            )

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        server = _Server(app, self)
        server.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: "at-" + secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: "rt-" + secrets.token_urlsafe(32),
                expires_generator=self._expires_in,
            ),
        )
        server.register_grant(_AuthorizationCodeGrant, [_S256Required(required=True), _OpenIDCode(self)])
        server.register_grant(_RefreshTokenGrant)
        server.register_endpoint(_Revocation)
        protector = ResourceProtector()
        protector.register_token_validator(_BearerValidator(self))

        def bearer() -> _AccessToken:
            try:
                with self._lock:
                    forced = self._api_failures > 0
                    if forced:
                        self._api_failures -= 1
                if forced:
                    raise InvalidTokenError(description="Forced failure.")
                return protector.acquire_token()
            except OAuth2Error as error:
                protector.raise_error_response(error)
                raise  # unreachable: raise_error_response raises

        @app.get("/authorize")
        def authorize() -> Response:
            user = dict(self.user)  # auto-approve as whoever the test says
            with self._lock:
                try:
                    grant = server.get_consent_grant(end_user=user)
                except OAuth2Error as error:
                    return server.handle_error_response(None, error)
                return server.create_authorization_response(grant_user=user, grant=grant)

        @app.post("/token")
        def token() -> Response:
            entry = {
                "grant_type": request.form.get("grant_type"),  # also reads the body before taking the lock
                "at": time.time(),
                "status": 500,
                "refresh_token_in": request.form.get("refresh_token"),
            }
            with self._lock:
                self._in_flight += 1
                self.max_concurrent_token_requests = max(self.max_concurrent_token_requests, self._in_flight)
            try:
                delay = self.token_delay
                if delay > 0:
                    time.sleep(delay)
                with self._lock:
                    if self._token_failures:
                        response = self._forced_token_failure(*self._token_failures.pop(0))
                    else:
                        response = server.create_token_response()
                    entry["status"] = response.status_code
                return response
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self.token_requests.append(entry)

        @app.post("/revoke")
        def revoke() -> Response:
            request.form  # noqa: B018 - read the body before taking the lock
            with self._lock:
                return server.create_endpoint_response(_Revocation.ENDPOINT_NAME)

        @app.get("/.well-known/openid-configuration")
        def discovery() -> Response:
            return jsonify(
                issuer=self.url,
                authorization_endpoint=self.authorize_url,
                token_endpoint=self.token_url,
                revocation_endpoint=self.revocation_url,
                userinfo_endpoint=self.userinfo_url,
                jwks_uri=self.jwks_url,
                response_types_supported=["code"],
                grant_types_supported=["authorization_code", "refresh_token"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "email", "profile"],
                token_endpoint_auth_methods_supported=CLIENT_AUTH_METHODS,
                revocation_endpoint_auth_methods_supported=CLIENT_AUTH_METHODS,
                code_challenge_methods_supported=["S256"],
                claims_supported=["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified", "name"],
            )

        @app.get("/jwks")
        def jwks() -> Response:
            assert self._key is not None
            return jsonify(keys=[self._key.as_dict(private=False)])

        @app.get("/v1/me")
        def spotify_me() -> Response:
            user = bearer().user
            return jsonify(id=user["id"], email=user.get("email"), display_name=user.get("name"))

        @app.get("/oauth2/v3/userinfo")
        def google_userinfo() -> Response:
            user = bearer().user
            return jsonify(sub=user["id"], email=user.get("email"), email_verified=True, name=user.get("name"))

        @app.get("/drive/v3/files/<file_id>")
        def drive_file(file_id: str) -> Response:
            bearer()
            with self._lock:
                found = self.files.get(file_id)
            if found is None:
                body = {
                    "error": {
                        "code": 404,
                        "message": f"File not found: {file_id}.",
                        "errors": [
                            {"domain": "global", "reason": "notFound", "message": f"File not found: {file_id}."}
                        ],
                    }
                }
                response = jsonify(body)
                response.status_code = 404
                return response
            name, mime_type, content = found
            if request.args.get("alt") == "media":
                response = Response(content, content_type=mime_type)
                return response.make_conditional(request, accept_ranges=True, complete_length=len(content))
            return jsonify(id=file_id, name=name, mimeType=mime_type, size=str(len(content)))

        return app

    @staticmethod
    def _forced_token_failure(status: int, retry_after: int | None, error: str | None) -> Response:
        if error is not None:
            response = jsonify(error=error)
            response.status_code = status
        else:
            response = Response(f"forced failure ({status})", status=status, mimetype="text/plain")
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response
