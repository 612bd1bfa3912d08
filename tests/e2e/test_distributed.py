"""Workers on other hosts, for real: the API and each worker queue run as separate hosts in Linux network
namespaces, each with its own data directory, and share only Temporal, Postgres and an S3 server over TCP on a
veth network.

    root namespace: bridge 10.X.Y.1 ── Temporal (relay to the session's dev server), Postgres (relay to the session's
                    server, a database of this test's own), nanio (S3)
    api 10.X.Y.2 · workflows .3 · cpu .4 · gpu .5 · llm .6   (one `ip netns` each, veth into the bridge)

Namespaces isolate the network only; the filesystem is shared, so each host gets a data directory of its own and
the test checks nothing landed in them (every object is in the bucket, every row in the database). The relays are
plain TCP forwarders in this process (the session's Postgres listens on a Unix socket, its Temporal on loopback):
to the hosts they are the database and the Temporal frontend at the bridge address.

Needs root and `ip` (CI runs as root on these machines); skipped elsewhere with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlmodel import col
from temporalio.client import Client

from models import MediaItem, MediaStatus, TranscriptSegment
from nexus.core.codec import data_converter
from nexus.core.crypto import Keyring, new_key_entry, parse_keys
from nexus.core.db import session_scope
from nexus.identity.service import create_user, issue_api_key
from nexus.media.repository import overall_progress
from nexus.ops.migrate import upgrade_async
from nexus.runtime import Runtime
from tests.conftest import activity_attempts, chat_turn
from tests.e2e.test_media_pipeline import activity_results, assert_segments_sane
from tests.harness import free_port

HOSTS = ("api", "workflows", "cpu", "gpu", "llm")
S3_KEY, S3_SECRET = "distributed-test", "distributed-test-secret-key"


def _can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root (ip netns)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`)"
    probe = f"nxprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class Network:
    """A bridge in the root namespace and one namespace per host, each joined to it by a veth pair."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:5]
        self.subnet = f"10.{random.randint(100, 250)}.{random.randint(0, 250)}"
        self.bridge = f"nxb{self.tag}"
        self.gateway = f"{self.subnet}.1"

    def ns(self, host: str) -> str:
        return f"nx{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"{self.subnet}.{HOSTS.index(host) + 2}"

    def __enter__(self) -> Network:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, host in enumerate(HOSTS):
            ns, outside, inside = self.ns(host), f"nxv{self.tag}{i}", f"nxp{self.tag}{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", ns)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        return self

    def __exit__(self, *exc: object) -> None:
        for i, host in enumerate(HOSTS):
            subprocess.run(["ip", "netns", "del", self.ns(host)], capture_output=True)
            subprocess.run(["ip", "link", "del", f"nxv{self.tag}{i}"], capture_output=True)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)


class Relay:
    """TCP on `host:port` forwarded to a Unix socket or a loopback port, in a thread of its own."""

    def __init__(self, host: str, target: str | tuple[str, int]) -> None:
        self.host, self.target = host, target
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if isinstance(self.target, str):
                up_reader, up_writer = await asyncio.open_unix_connection(self.target)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> Relay:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class Host:
    """A Nexus process in a namespace, with its own data directory and log."""

    def __init__(self, net: Network, name: str, env: dict[str, str], root: Path, *args: str) -> None:
        self.net, self.name, self.args = net, name, args
        self.data_dir = root / name
        self.env = env | {"NEXUS_DATA_DIR": str(self.data_dir)}
        self.log = root / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Host:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.net.ns(self.name), sys.executable, "-m", "nexus.cli", *self.args],
                env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        return self

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)  # `ip netns exec` execs: this is the worker itself
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def terminate(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def stop_all(hosts: list[Host]) -> None:
    """SIGTERM to every host at once, then wait for each: shutdowns overlap instead of queueing."""
    for host in hosts:
        host.terminate()
    for host in hosts:
        host.stop()


def _postgres_socket(database_url: str) -> str:
    socket_dir = database_url.split("host=", 1)[1].split("&", 1)[0]
    (found,) = [p for p in Path(socket_dir).glob(".s.PGSQL.*") if not p.name.endswith(".lock")]
    return str(found)


@contextlib.asynccontextmanager
async def _database(database_url: str) -> AsyncIterator[str]:
    """A migrated database of this test's own on the session's server (its workers and deployment id are apart)."""
    name = f"dist_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        await upgrade_async(database_url.replace("/postgres?", f"/{name}?"))
        yield name
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


@contextlib.contextmanager
def _nanio(host: str, root: Path) -> Iterator[int]:
    port = free_port()
    nanio = shutil.which("nanio") or str(Path(sys.executable).parent / "nanio")
    env = os.environ | {"NANIO_ACCESS_KEY": S3_KEY, "NANIO_SECRET_KEY": S3_SECRET}
    proc = subprocess.Popen(
        [nanio, "serve", "--host", host, "--port", str(port), "--data-dir", str(root)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while socket.socket().connect_ex((host, port)) != 0:
            assert time.monotonic() < deadline, "nanio did not start"
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def _wait_ready(api: httpx.AsyncClient, hosts: list[Host], within_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + within_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        for host in hosts:
            assert host.proc is not None and host.proc.poll() is None, f"{host.name} exited:\n{host.tail()}"
        with contextlib.suppress(httpx.HTTPError):
            resp = await api.get("/health/ready")
            body = resp.json()
            if resp.status_code == 200:
                return body
        await asyncio.sleep(0.5)
    raise AssertionError(f"not ready: {body}")


async def _finished_once(
    client: Client, engine: AsyncEngine, workflow_id: str, media_id: uuid.UUID, killed_at: datetime
) -> None:
    """The killed transcription was retried (attempt 2 is the one that finished); the steps finished before the kill
    ran once, on their first attempt; the killed attempt left no partial transcript for the retry to mistake for a
    finished one: the retry transcribed from scratch (not `reused`), after the kill, the whole clip."""
    assert await activity_attempts(client, workflow_id, "media.transcribe") == [2]
    for finished_before_kill in ("media.fetch", "media.fingerprint"):
        assert await activity_attempts(client, workflow_id, finished_before_kill) == [1]
    (transcribed,) = await activity_results(client, workflow_id, "media.transcribe")
    assert transcribed["reused"] is False, transcribed
    transcript = select(TranscriptSegment).where(col(TranscriptSegment.media_id) == media_id)
    async with session_scope(engine) as session:
        rows = sorted((await session.execute(transcript)).scalars().all(), key=lambda r: r.idx)
        stored = await session.get(MediaItem, media_id)
    assert len(rows) == transcribed["segments"] and [r.idx for r in rows] == list(range(len(rows)))
    assert all(r.created_at > killed_at for r in rows), (killed_at, [r.created_at for r in rows])
    assert stored is not None and stored.duration_s
    segments = [{"start": r.start_s, "end": r.end_s, "text": r.text, "speaker": r.speaker} for r in rows]
    assert_segments_sane(segments, stored.duration_s)
    assert segments[-1]["end"] > 0.9 * stored.duration_s, (stored.duration_s, segments[-1])  # to the end


pytestmark = pytest.mark.skipif(bool(_can_make_namespaces()), reason=str(_can_make_namespaces()))


@pytest.mark.timeout(420)
async def test_api_and_each_queue_on_separate_hosts_ingest_search_chat_and_survive_a_killed_gpu_worker(
    runtime: Runtime, database_url: str, clips: dict[str, Path], tmp_path: Path
) -> None:
    with Network() as net:
        async with contextlib.AsyncExitStack() as stack:
            pg = stack.enter_context(Relay(net.gateway, _postgres_socket(database_url)))
            temporal_host, temporal_port = runtime.settings.temporal_target.rsplit(":", 1)
            tr = stack.enter_context(Relay(net.gateway, (temporal_host, int(temporal_port))))
            s3_port = stack.enter_context(_nanio(net.gateway, tmp_path / "s3"))
            boto3.client(
                "s3", endpoint_url=f"http://{net.gateway}:{s3_port}", aws_access_key_id=S3_KEY,
                aws_secret_access_key=S3_SECRET, region_name="us-east-1",
            ).create_bucket(Bucket="nexus-dist")  # fmt: skip
            async with _database(database_url) as dbname:
                prefix = f"dist-{uuid.uuid4().hex[:6]}"
                env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")} | {
                    "NEXUS_MODE": "distributed",
                    "NEXUS_DATABASE_URL": f"postgresql://postgres@{net.gateway}:{pg.port}/{dbname}",
                    "NEXUS_TEMPORAL_ADDRESS": f"{net.gateway}:{tr.port}",
                    "NEXUS_STORAGE_URL": "s3://nexus-dist",
                    "NEXUS_S3_ENDPOINT_URL": f"http://{net.gateway}:{s3_port}",
                    "NEXUS_S3_ACCESS_KEY_ID": S3_KEY,
                    "NEXUS_S3_SECRET_ACCESS_KEY": S3_SECRET,
                    "NEXUS_S3_REGION": "us-east-1",
                    "NEXUS_SECRET_KEYS": new_key_entry(),
                    "NEXUS_TASK_QUEUE_PREFIX": prefix,
                    "NEXUS_API_HOST": net.address("api"),
                    "NEXUS_API_PORT": "8000",
                    "NEXUS_AUTH_RATE_LIMIT_PER_MINUTE": "100000",
                    "HF_HUB_OFFLINE": "1",
                }
                root = tmp_path / "hosts"
                hosts = {name: Host(net, name, env, root, *(["api"] if name == "api" else ["worker", "--queue", name]))
                         for name in HOSTS}  # fmt: skip
                replacement = Host(net, "gpu", env, root / "gpu-again", "worker", "--queue", "gpu")
                stack.callback(stop_all, [*hosts.values(), replacement])
                for host in hosts.values():
                    host.start()

                base = f"http://{net.address('api')}:8000"
                async with httpx.AsyncClient(base_url=base, timeout=60) as api:
                    ready = await _wait_ready(api, list(hosts.values()), 180)
                    workers = ready["components"]["workers"]["detail"]
                    assert "4 worker process(es) agree" in workers, workers

                    engine = create_async_engine(database_url.replace("/postgres?", f"/{dbname}?"))
                    stack.push_async_callback(engine.dispose)
                    async with session_scope(engine) as session:
                        user = await create_user(session, f"dist-{uuid.uuid4().hex[:6]}@example.test")
                        token = (await issue_api_key(session, user, name="dist")).token
                    headers = {"Authorization": f"Bearer {token}"}

                    # Upload to the API host; the cpu host converts it from the bucket, the gpu host transcribes.
                    with clips["long_mp3"].open("rb") as f:
                        resp = await api.post("/api/media/upload", files={"file": ("long.mp3", f, "audio/mpeg")},
                                              data={"title": "Across hosts"}, headers=headers)  # fmt: skip
                    assert resp.status_code in (200, 201, 202), resp.text
                    submitted = resp.json()
                    media_id, job_id = submitted["media_id"], submitted["job_id"]

                    # SIGKILL the gpu host's worker once Whisper is into the audio (its progress moves past the
                    # stage's start only when a segment is decoded), then bring the host back.
                    floor = overall_progress(MediaStatus.transcribing, 0.0)
                    async with asyncio.timeout(150):
                        while True:
                            job = (await api.get(f"/api/jobs/{job_id}", headers=headers)).json()
                            assert job["stage"] not in ("failed", "cancelled", "completed"), job
                            if job["stage"] == "transcribing" and job["progress"] > floor:
                                break
                            await asyncio.sleep(0.05)
                    assert job["progress"] < overall_progress(MediaStatus.transcribing, 1.0), job  # not finished
                    hosts["gpu"].kill()
                    killed_at = datetime.now(UTC)
                    replacement.start()
                    async with asyncio.timeout(240):
                        while (job := (await api.get(f"/api/jobs/{job_id}", headers=headers)).json())["stage"] not in (
                            "completed", "failed", "cancelled",
                        ):  # fmt: skip
                            await asyncio.sleep(0.3)
                    assert job["stage"] == "completed", (job, replacement.tail(), hosts["cpu"].tail())
                    # Read with this deployment's keyring: its payloads are encrypted with NEXUS_SECRET_KEYS.
                    ring = Keyring(parse_keys(env["NEXUS_SECRET_KEYS"]))
                    reader = await Client.connect(
                        runtime.settings.temporal_target, data_converter=data_converter(runtime.settings, lambda: ring)
                    )
                    await _finished_once(reader, engine, job["workflow_id"], uuid.UUID(media_id), killed_at)

                    # Search (the API host embeds the query; the cpu host embedded the passages) and chat.
                    hits = (
                        await api.post("/api/search", json={"query": "tectonic plates magma"}, headers=headers)
                    ).json()
                    assert any(h["media_id"] == media_id for h in hits["results"]), hits
                    events = await chat_turn(api, headers, message="What happens where tectonic plates pull apart?")
                    final = events[-1][1]
                    assert events[-1][0] == "final" and any(c["media_id"] == media_id for c in final["citations"]), (
                        final
                    )

                # Shared state only: every object is in the bucket, nothing in any host's data directory.
                # (model caches aside, and Mem0's install id: it writes one at import, telemetry is off)
                allowed = {Path("mem0/config.json")}
                for host in [*hosts.values(), replacement]:
                    files = [p.relative_to(host.data_dir) for p in host.data_dir.rglob("*") if p.is_file()]
                    stray = [p for p in files if "cache" not in p.parts and p not in allowed]
                    assert not stray, (host.name, stray)
