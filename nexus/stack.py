"""`nexus up`: run the whole stack in the foreground on embedded defaults.

Start order: Temporal dev server, PostgreSQL, migrations, first-run admin, then one worker process per task
queue and the API. Stop order is the reverse, all within ~10 s of Ctrl-C or SIGTERM. Child processes get their
own session (so a terminal's Ctrl-C reaches only this supervisor, which stops them in order) and a parent-death
signal (so even a SIGKILLed supervisor leaves none behind).
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
from rich.console import Console

from nexus.core.db import make_engine
from nexus.core.embedded import (
    EmbeddedPostgres,
    become_subreaper,
    reap_adopted,
    temporal_dev_server_args,
    temporal_env,
)
from nexus.core.orchestration import Queue
from nexus.core.settings import Settings
from nexus.ops.bootstrap import ensure_local_admin
from nexus.ops.migrate import upgrade

console = Console(stderr=True)
STOP_GRACE_S = 6.0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, start_new_session=True, preexec_fn=_die_with_parent)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open {host}:{port} within {timeout:.0f}s")


def stop_children(children: list[Child]) -> None:
    for child in children:
        if child.alive():
            child.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{child.name} did not stop in time; killing it")
            child.proc.kill()
            child.proc.wait()


class _Stop(Exception):
    pass


def run_stack(settings: Settings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    become_subreaper()
    env = {**os.environ, "NEXUS_DATA_DIR": str(settings.data_dir), "PYTHONUNBUFFERED": "1"}
    services: list[Child] = []  # infrastructure, stopped last
    apps: list[Child] = []  # workers + API, stopped first
    postgres: EmbeddedPostgres | None = None

    def on_signal(signum: int, _frame: object) -> None:
        raise _Stop(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if settings.embedded_temporal:
            temporal = Child("temporal", temporal_dev_server_args(settings), temporal_env())
            temporal.start()
            services.append(temporal)
            wait_for_port(settings.temporal_host, settings.temporal_port, 30, "Temporal dev server")
            env["NEXUS_TEMPORAL_ADDRESS"] = settings.temporal_target
        if settings.embedded_database:
            postgres = EmbeddedPostgres(settings.pg_dir)
            env["NEXUS_DATABASE_URL"] = postgres.start()
        database_url = env.get("NEXUS_DATABASE_URL") or settings.database_url or ""
        console.print("[bold]Migrating the database...")
        upgrade(database_url)
        issued = asyncio.run(_bootstrap(database_url, settings))
        if not settings.embedded_temporal:
            asyncio.run(_register_search_attributes(settings))

        cli = [sys.executable, "-m", "nexus.cli"]
        for queue in Queue:
            apps.append(Child(f"worker-{queue.value}", [*cli, "worker", "--queue", queue.value], env))
        apps.append(Child("api", [*cli, "api"], env))
        for child in apps:
            child.start()

        api = f"http://{settings.api_host}:{settings.api_port}"
        _wait_ready(api, apps)
        _print_banner(settings, api, issued)
        pg_restarts: list[float] = []
        while True:
            for child in apps + services:
                if not child.alive():
                    _restart(child)
            if postgres is not None and not postgres.is_running():
                _note_restart("postgres", pg_restarts, "it stopped")
                postgres.ensure_running()
            time.sleep(0.5)
    except _Stop as stop:
        console.print(f"\n[bold]{stop.args[0]} received, stopping...")
        return 0
    except Exception as exc:
        console.print(f"[red bold]nexus up failed:[/] {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children(apps)
        stop_children(services)
        if postgres is not None:
            postgres.stop()
        reap_adopted()
        console.print("[bold]Nexus stopped.")


def _note_restart(name: str, restarts: list[float], why: str) -> None:
    """Allow a restart, unless this is the sixth within a minute: then something is wrong that restarting won't
    fix, and the stack stops with the reason instead of looping."""
    now = time.monotonic()
    restarts[:] = [t for t in restarts if now - t < 60] + [now]
    if len(restarts) > 5:
        raise RuntimeError(f"{name} keeps exiting ({why}); giving up")
    console.print(f"[yellow]{name}: {why}; restarting")


def _restart(child: Child) -> None:
    _note_restart(child.name, child.restarts, f"exited with {child.proc.returncode}")  # type: ignore[union-attr]
    child.start()


def _wait_ready(api: str, apps: list[Child], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        for child in apps:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited with code {child.proc.returncode} during start-up")  # type: ignore[union-attr]
        try:
            resp = httpx.get(f"{api}/health/ready", timeout=10)
            if resp.status_code == 200:
                return
            last = ", ".join(resp.json().get("failing", []))
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"the stack was not ready within {timeout:.0f}s (not ok: {last})")


async def _bootstrap(database_url: str, settings: Settings) -> bool:
    from nexus.ops.fleet import stamp_store
    from nexus.storage.service import make_store

    engine = make_engine(database_url, pool_size=1)
    try:
        await stamp_store(engine, make_store(settings))
        return await ensure_local_admin(engine, settings.api_key_file)
    finally:
        await engine.dispose()


async def _register_search_attributes(settings: Settings) -> None:
    from nexus.core.temporal import connect, ensure_search_attributes

    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)


def _print_banner(settings: Settings, api: str, issued: bool) -> None:
    ui = (
        f"http://{settings.temporal_host}:{settings.temporal_ui_port}"
        if settings.embedded_temporal
        else "(external Temporal: use its own Web UI)"
    )
    key_note = "new key written" if issued else "existing key reused"
    console.print(
        "\n[bold green]Nexus is up.[/]\n"
        f"  Web console    {api}/  (sign in with the API key below)\n"
        f"  API            {api}\n"
        f"  API docs       {api}/docs\n"
        f"  Temporal UI    {ui}\n"
        f"  API key file   {settings.api_key_file} ({key_note})\n"
        f"  Data dir       {settings.data_dir}\n"
        'Try:  curl -H "Authorization: Bearer $(cat '
        f'{settings.api_key_file})" {api}/api/me\n'
        "Press Ctrl-C to stop.\n",
        soft_wrap=True,  # keep the curl line whole, whatever the terminal width
    )
