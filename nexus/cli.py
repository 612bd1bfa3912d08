"""The `nexus` command line: run the stack and its parts, manage users and keys, check the machine."""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.core.orchestration import Queue
from nexus.core.settings import Settings, get_settings

app = typer.Typer(help="Nexus: self-hosted AI-workspace backend.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(apikey_app, name="apikey")
console = Console()
T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, plus a settle step: short-lived Temporal clients can crash the interpreter at exit
    (temporalio/sdk-python#300) unless the loop gets a moment after they are dropped."""

    async def wrapper() -> T:
        try:
            return await coro
        finally:
            gc.collect()
            await asyncio.sleep(0.1)

    return asyncio.run(wrapper())


# Commands that open the database, storage or Temporal themselves (the rest talk to the API, or to nothing).
_SERVER_COMMANDS = {"up", "api", "worker", "migrate", "users", "apikey", "keys", "cleanup", "schedules"}
_SERVER_SUBCOMMANDS = {("reembed", "start")}
_NO_SHARED_STATE = {("keys", "generate")}  # makes the keyring that NEXUS_SECRET_KEYS then holds


@app.callback()
def _check_mode(ctx: typer.Context) -> None:
    """In distributed mode a command that would open a component refuses to start, naming each missing setting,
    before anything falls back to an embedded one (nexus.core.settings.SHARED_SETTINGS)."""
    from nexus.core.settings import MissingSharedSettings

    command = ctx.invoked_subcommand
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    if command not in _SERVER_COMMANDS and tuple(args[:2]) not in _SERVER_SUBCOMMANDS:
        return
    if tuple(args[:2]) in _NO_SHARED_STATE:
        return
    try:
        get_settings().require_shared(f"`nexus {command}`")
    except MissingSharedSettings as exc:
        print(exc, file=sys.stderr)
        raise typer.Exit(2) from exc


def _logging() -> None:
    from nexus.core.logs import configure

    settings = get_settings()
    configure(settings.log_level, settings.log_format)


@app.command()
def up() -> None:
    """Run the whole stack in the foreground (Temporal, Postgres, three workers, API). Ctrl-C stops it."""
    from nexus.stack import run_stack

    raise typer.Exit(run_stack(get_settings()))


@app.command()
def api() -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    from api.app import create_app

    _logging()
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level,
        access_log=False,  # it prints query strings, and WebSocket clients pass keys as ?token=; see api/access_log
        timeout_graceful_shutdown=3,
    )


@app.command()
def worker(
    queue: Annotated[list[Queue] | None, typer.Option("--queue", "-q", help="Task queue(s) to serve.")] = None,
) -> None:
    """Run a worker for one or more task queues (default: all three)."""
    from nexus.runtime import Runtime
    from workers.main import run_workers

    _logging()
    queues = queue or list(Queue)
    try:
        run_async(run_workers(Runtime.build(get_settings()), queues))
    except KeyboardInterrupt:
        pass


@app.command()
def openapi(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of standard output.")] = None,
) -> None:
    """Print the API's OpenAPI schema (what the web console's typed client is generated from: `make web-client`)."""
    import json

    from api.app import create_app

    text = json.dumps(create_app(Settings()).openapi(), indent=2, sort_keys=True) + "\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    else:
        typer.echo(text, nl=False)


@app.command()
def migrate() -> None:
    """Apply database migrations (and register search attributes on an external Temporal)."""
    from nexus.core.db import database_url_for_command
    from nexus.ops.migrate import upgrade

    settings = get_settings()
    with database_url_for_command(settings) as url:
        upgrade(url)
        run_async(_stamp_store(settings, url))
    console.print("[green]database is at the latest revision")
    if not settings.embedded_temporal:
        from nexus.stack import _register_search_attributes

        run_async(_register_search_attributes(settings))
        console.print("[green]search attributes registered")


async def _stamp_store(settings: Settings, url: str) -> None:
    """The object store gets the database's deployment id, which every worker's report is compared with."""
    from nexus.core.db import make_engine
    from nexus.ops.fleet import stamp_store
    from nexus.storage.service import make_store

    engine = make_engine(url, pool_size=1)
    try:
        await stamp_store(engine, make_store(settings))
    finally:
        await engine.dispose()


@app.command()
def doctor() -> None:
    """Check every component Nexus needs; exits non-zero when something is missing."""
    from nexus.ops.doctor import run_doctor

    checks = run_async(run_doctor(get_settings()))
    table = Table("component", "ok", "detail", title="nexus doctor")
    for check in checks:
        table.add_row(check.name, "[green]ok" if check.ok else "[red]MISSING", check.detail)
    console.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="The user's email (their login).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="Grant admin rights.")] = False,
) -> None:
    """Create a user (with a personal workspace)."""
    from nexus.identity.service import IdentityError, create_user

    async def go() -> str:
        async with _session() as session:
            return str((await create_user(session, email, name=name, is_admin=admin)).id)

    try:
        console.print(f"created user {email} ({run_async(go())})")
    except IdentityError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc


@apikey_app.command("create")
def apikey_create(
    email: Annotated[str, typer.Option(help="Whose key.")],
    name: Annotated[str, typer.Option(help="A label to tell keys apart.")] = "cli",
) -> None:
    """Issue an API key. It is printed once and cannot be shown again."""
    from nexus.identity.service import get_user_by_email, issue_api_key

    async def go() -> str | None:
        async with _session() as session:
            user = await get_user_by_email(session, email)
            return None if user is None else (await issue_api_key(session, user, name=name)).token

    token = run_async(go())
    if token is None:
        console.print(f"[red]no user with email {email}: create it with `nexus users create --email {email}`")
        raise typer.Exit(1)
    print(token)


media_app = typer.Typer(help="Browse media.", no_args_is_help=True)
app.add_typer(media_app, name="media")


def _client():
    from nexus.client import ApiError, NexusClient

    try:
        return NexusClient(get_settings())
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc


@app.command()
def ingest(
    target: Annotated[str, typer.Argument(help="A URL (page or file) or a local audio/video file.")],
    title: Annotated[str | None, typer.Option(help="Title (otherwise one is generated).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the stages until the job ends.")] = False,
) -> None:
    """Submit media for processing."""
    from nexus.client import ApiError

    client = _client()
    try:
        submitted = client.submit(target, title)
        console.print(f"media [bold]{submitted['media_id']}[/]  job {submitted['job_id']}")
        if not wait:
            console.print(f"follow it with: nexus ingest --wait ... or GET /api/jobs/{submitted['job_id']}/events")
            return
        final = _follow(client, submitted["job_id"])
        media = client.request("GET", f"/api/media/{submitted['media_id']}")
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    if final["stage"] == "completed":
        console.print(f"[green]completed[/]: [bold]{media['title']}[/] ({media['duration_s']:.0f} s)")
        console.print(f"tags: {', '.join(media['tags'])}\nsummary: {media['summary']}")
    elif final["stage"] == "duplicate":
        console.print(f"[yellow]duplicate[/] of {media['duplicate_of']}")
    else:
        console.print(f"[red]{final['stage']}[/]: {final.get('message')}")
        raise typer.Exit(1)


def _follow(client, job_id: str) -> dict:
    """One progress bar per stage, driven by the job's event stream."""
    from rich.progress import BarColumn, Progress, TextColumn

    from models import MediaStatus
    from nexus.media.repository import STAGE_SPAN

    stages = [s for s in STAGE_SPAN if s is not MediaStatus.pending]
    last: dict = {}
    with Progress(TextColumn("{task.description:>15}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%")) as bars:
        tasks = {s: bars.add_task(s.value, total=100) for s in stages}
        for event in client.events(job_id):
            last = event
            stage = MediaStatus(event["stage"])
            if stage in tasks:
                lo, hi = STAGE_SPAN[stage]
                done = 100 * (event["progress"] - lo) / (hi - lo) if hi > lo else 0
                for earlier in stages[: stages.index(stage)]:
                    bars.update(tasks[earlier], completed=100)
                bars.update(tasks[stage], completed=max(0, min(100, done)))
            elif stage is MediaStatus.completed:
                for t in tasks.values():
                    bars.update(t, completed=100)
    return last


@app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="Words or a question.")],
    limit: Annotated[int, typer.Option(help="How many results.")] = 10,
    mode: Annotated[str, typer.Option(help="hybrid, semantic or keyword.")] = "hybrid",
) -> None:
    """Search your transcripts (hybrid: meaning + exact words)."""
    from nexus.client import ApiError

    try:
        found = _client().request("POST", "/api/search", json={"query": query, "limit": limit, "mode": mode})
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    table = Table("score", "title", "at", "matched", "snippet", title=f"{len(found['results'])} result(s)")
    for r in found["results"]:
        at = f"{int(r['start'] // 60)}:{int(r['start'] % 60):02d}-{int(r['end'] // 60)}:{int(r['end'] % 60):02d}"
        table.add_row(
            f"{r['score']:.4f}", r["title"] or str(r["media_id"])[:8], at, "+".join(r["matched"]), r["snippet"]
        )
    console.print(table)


@app.command()
def chat(
    message: Annotated[str, typer.Argument(help="Your question or message.")],
    conversation: Annotated[str | None, typer.Option(help="Continue this conversation id.")] = None,
    provider: Annotated[list[str] | None, typer.Option(help="gemini, openai or extractive (repeatable).")] = None,
    mode: Annotated[str, typer.Option(help="sequential or parallel, for several providers.")] = "sequential",
) -> None:
    """Ask your archive; the answer streams as it is generated, then its citations."""
    from nexus.client import ApiError

    body = {"message": message, "conversation_id": conversation, "providers": provider or None, "mode": mode}
    out = Console(highlight=False)
    final: dict = {}
    try:
        for kind, data in _client().sse("POST", "/api/chat", json=body):
            if kind == "token":
                out.print(data["text"], end="", markup=False)
            elif kind == "reset":
                out.print(f"\n[yellow]({data.get('reason', 'retrying')})[/]")
            elif kind == "final":
                final = data
            elif kind == "error":
                out.print(f"\n[red]{data.get('message')}")
                raise typer.Exit(1)
            elif kind == "turn":
                conversation = data["conversation_id"]
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    out.print()
    for i, c in enumerate(final.get("citations", []), start=1):
        start, end = c["start"], c["end"]
        out.print(f"[dim][{i}] {c.get('title') or c['media_id']} {int(start // 60)}:{int(start % 60):02d}-"
                  f"{int(end // 60)}:{int(end % 60):02d}[/]")  # fmt: skip
    out.print(f"[dim]conversation {conversation}[/]")


@media_app.command("list")
def media_list(
    status: Annotated[str | None, typer.Option(help="Filter by status.")] = None,
    limit: Annotated[int, typer.Option(help="How many.")] = 50,
) -> None:
    """List your media."""
    from nexus.client import ApiError

    try:
        params = {"limit": limit, **({"status": status} if status else {})}
        page = _client().request("GET", "/api/media", params=params)
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    table = Table("id", "title", "status", "duration", "tags", title=f"{page['total']} media item(s)")
    for m in page["items"]:
        duration = f"{m['duration_s']:.0f} s" if m["duration_s"] else ""
        table.add_row(m["id"], m["title"] or "", m["status"], duration, ", ".join(m["tags"]))
    console.print(table)


@media_app.command("retranscribe")
def media_retranscribe(
    media_id: Annotated[str, typer.Argument(help="The item's id.")],
    model: Annotated[str | None, typer.Option(help="fast or multilingual.")] = None,
    language: Annotated[str | None, typer.Option(help="Force the language (e.g. de).")] = None,
    speakers: Annotated[int | None, typer.Option(help="How many speakers.")] = None,
    vocabulary: Annotated[list[str] | None, typer.Option("--term", help="A term to recognise (repeatable).")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the stages until the job ends.")] = False,
) -> None:
    """Transcribe an item again; it keeps its transcript until the new one is complete."""
    from nexus.client import ApiError

    body = {"model": model, "language": language, "speakers": speakers, "vocabulary": vocabulary or []}
    client = _client()
    try:
        started = client.request("POST", f"/api/media/{media_id}/retranscribe", json=body)
        console.print(f"re-transcribing [bold]{media_id}[/]  job {started['job_id']}")
        if not wait:
            return
        final = _follow(client, started["job_id"])
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    if final["stage"] != "completed":
        console.print(f"[red]{final['stage']}[/]: {final.get('message')}")
        raise typer.Exit(1)
    console.print("[green]completed[/]: the new transcript is in place")


@app.command("export")
def export_cmd(
    media_id: Annotated[str, typer.Argument(help="The item's id.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="srt, vtt, txt or json.")] = "srt",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
) -> None:
    """Export a transcript as subtitles (SRT, WebVTT), plain text or JSON."""
    from nexus.client import ApiError

    client = _client()
    try:
        resp = client.raw("GET", f"/api/media/{media_id}/transcript.{fmt}")
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    if output is None:
        sys.stdout.write(resp.text)
    else:
        output.write_text(resp.text, encoding="utf-8")
        console.print(f"wrote {output}")


@asynccontextmanager
async def _session() -> AsyncIterator[AsyncSession]:
    from nexus.core.db import database_url_for_command, make_engine, session_scope

    with database_url_for_command(get_settings()) as url:
        engine = make_engine(url, pool_size=1)
        try:
            async with session_scope(engine) as session:
                yield session
        finally:
            await engine.dispose()


jobs_app = typer.Typer(help="Operator actions on many runs at once (admin role).", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _hours(text: str | None) -> float | None:
    """`24h`, `90m`, `7d` (or plain hours) -> hours."""
    if not text:
        return None
    units = {"m": 1 / 60, "h": 1.0, "d": 24.0}
    try:
        return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: use e.g. 90m, 24h or 7d") from exc


def _bulk(
    action: str,
    status: str,
    since: str | None,
    stage: str | None,
    contains: str | None,
    owner: str | None,
    dry_run: bool,
) -> None:
    """Find the matching runs, then act on them a few at a time with a progress bar, then a summary."""
    from rich.progress import Progress

    from nexus.client import ApiError

    query = {
        "status": status,
        "since_hours": _hours(since),
        "stage": stage,
        "error_contains": contains,
        "owner_id": owner,
    }
    query = {k: v for k, v in query.items() if v is not None}
    client = _client()
    try:
        found = client.request("GET", "/api/admin/jobs", params=query)
        table = Table("job", "title", "stage", "stopped in", "error", title=f"{len(found)} matching run(s)")
        for job in found[:50]:
            error = (job["error"] or "")[:60]
            table.add_row(job["id"], job["title"] or "", job["stage"], job["failed_stage"] or "", error)
        console.print(table)
        if dry_run or not found:
            return
        done, skipped = 0, dict[str, str]()
        with Progress(console=console) as bar:
            task = bar.add_task(action, total=len(found))
            for i in range(0, len(found), 10):
                ids = [job["id"] for job in found[i : i + 10]]
                result = client.request("POST", f"/api/admin/jobs/{action}", json={**query, "job_ids": ids})
                done += len(result["done"])
                skipped |= result["skipped"]
                bar.advance(task, len(ids))
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    verb = "retried" if action == "retry" else "cancelled"
    console.print(f"[green]{done} {verb}[/], {len(skipped)} left alone")
    for job_id, why in skipped.items():
        console.print(f"  {job_id}: {why}")


@jobs_app.command("retry")
def jobs_retry(
    status: Annotated[str, typer.Option(help="failed or cancelled.")] = "failed",
    since: Annotated[str | None, typer.Option(help="Changed within: 90m, 24h, 7d.")] = None,
    stage: Annotated[str | None, typer.Option(help="The stage it stopped in (e.g. transcribing).")] = None,
    error_contains: Annotated[str | None, typer.Option(help="Text in the failure reason.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this user's runs (user id).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be retried.")] = False,
) -> None:
    """Retry every matching run from the step that stopped it (finished steps are reused, not repeated)."""
    _bulk("retry", status, since, stage, error_contains, owner, dry_run)


@jobs_app.command("cancel")
def jobs_cancel(
    since: Annotated[str | None, typer.Option(help="Changed within: 90m, 24h, 7d.")] = None,
    stage: Annotated[str | None, typer.Option(help="The stage it is in (e.g. transcribing).")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this user's runs (user id).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be cancelled.")] = False,
) -> None:
    """Cancel every matching unfinished run."""
    _bulk("cancel", "running", since, stage, None, owner, dry_run)


keys_app = typer.Typer(help="Encryption keys for secrets at rest (OAuth tokens).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new key entry for NEXUS_SECRET_KEYS (put it first to make it the primary)."""
    from nexus.core.crypto import new_key_entry

    print(new_key_entry())


async def _engine_do(fn: Callable[[Any], Awaitable[T]]) -> T:
    from nexus.core.db import database_url_for_command, make_engine

    with database_url_for_command(get_settings()) as url:
        engine = make_engine(url, pool_size=1)
        try:
            return await fn(engine)
        finally:
            await engine.dispose()


@keys_app.command("status")
def keys_status() -> None:
    """The keyring, and how many sealed values each key still protects."""
    from nexus.core.crypto import load_keyring
    from nexus.ops.keys import usage

    ring = load_keyring(get_settings())
    counts = run_async(_engine_do(usage))
    for kid in dict.fromkeys([*ring.key_ids, *counts]):
        role = "primary" if kid == ring.primary_id else ("retired" if kid in ring.key_ids else "MISSING")
        console.print(f"{kid}  {role:8}  {counts.get(kid, 0)} values")


def _rewrap(settings: Settings) -> None:
    from nexus.core.crypto import configure
    from nexus.ops.keys import record_rotation, rewrap_all

    ring = configure(settings)

    async def go(engine: Any) -> None:
        report = await rewrap_all(engine, ring, progress=lambda col, n: console.print(f"  {col}: {n} checked"))
        await record_rotation(engine, ring.primary_id, report)
        console.print(
            f"re-wrapped {report.rewrapped} values under {ring.primary_id} ({report.current} already were; "
            f"{report.unreadable} unreadable)"
        )

    run_async(_engine_do(go))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Make a new primary key and re-wrap every sealed value with it, in batches, while the stack runs."""
    from nexus.ops.keys import add_primary

    settings = get_settings()
    if settings.secret_keys is not None:
        console.print(
            "[red]the keyring comes from NEXUS_SECRET_KEYS: put a new entry first (`nexus keys generate`), "
            "restart the services, then run `nexus keys rewrap`"
        )
        raise typer.Exit(1)
    from nexus.core.crypto import ensure_key_file

    kid = add_primary(ensure_key_file(settings.secret_keys_file))
    console.print(f"new primary key {kid}")
    _rewrap(settings)
    console.print("when `nexus keys status` shows 0 values for an old key, remove it: `nexus keys drop KID`")


@keys_app.command("rewrap")
def keys_rewrap() -> None:
    """Re-wrap every sealed value with the current primary key (after changing NEXUS_SECRET_KEYS)."""
    _rewrap(get_settings())


@keys_app.command("drop")
def keys_drop(
    kid: Annotated[str, typer.Argument(help="The retired key's id.")],
    force: Annotated[
        bool, typer.Option("--force", help="Also when Temporal payloads may still be sealed with it.")
    ] = False,
) -> None:
    """Remove a retired key from the key file, once no value needs it and every worker runs with the rotated
    keyring."""
    from nexus.core.crypto import Keyring
    from nexus.ops.keys import drop_key, usage, workers_behind

    settings = get_settings()
    left = run_async(_engine_do(usage)).get(kid, 0)
    if left:
        console.print(f"[red]{left} values are still sealed with {kid}: run `nexus keys rewrap` first")
        raise typer.Exit(1)
    if settings.temporal_encryption and not force:
        # Rewrap reaches the database only: histories in Temporal (open runs, schedules' arguments, closed runs
        # within the namespace's retention) stay sealed with the key they were written under.
        console.print(
            f"[red]Temporal payloads written before the rotation are sealed with {kid}[/]: dropping it makes those "
            "histories unreadable (open runs would fail). Keep it until every run started before the rotation has "
            "closed and the namespace's retention has passed (workers re-seal schedules at start), then drop it "
            "with --force."
        )
        raise typer.Exit(1)
    ring = Keyring.from_file(settings.secret_keys_file)
    behind = run_async(_engine_do(lambda engine: workers_behind(engine, ring, settings.worker_stale_after_s)))
    if behind:
        console.print(
            f"[red]{len(behind)} worker(s) still run with another keyring[/] and may seal payloads with {kid}: "
            f"{', '.join(behind)}. They read the key file again at their next report (every "
            f"{settings.worker_heartbeat_s:g} s); a worker given NEXUS_SECRET_KEYS needs a restart with the new keys."
        )
        raise typer.Exit(1)
    try:
        drop_key(settings.secret_keys_file, kid)
    except ValueError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    console.print(f"removed {kid}")


@app.command("cleanup")
def cleanup_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be deleted.")] = False,
) -> None:
    """What the daily cleanup schedule does, now: expired sessions, OAuth states and tickets, old rate-limit
    counters and chat token events, stored objects with no row."""
    from nexus.core.db import database_url_for_command
    from nexus.ops.cleanup import run_cleanup
    from nexus.runtime import Runtime

    settings = get_settings()

    async def go() -> dict[str, Any]:
        with database_url_for_command(settings) as url:
            runtime = Runtime.build(settings.model_copy(update={"database_url": url}))
            try:
                return (await run_cleanup(runtime, dry_run=dry_run)).model_dump()
            finally:
                await runtime.close()

    try:
        report = run_async(go())
    except Exception as exc:
        console.print(f"[red]cleanup failed: {exc.__class__.__name__}: {str(exc).splitlines()[0]}")
        console.print("is the database set up? `nexus migrate` (or `make up`) creates and migrates it")
        raise typer.Exit(1) from exc
    verb = "would delete" if dry_run else "deleted"
    for kind, count in report.items():
        if kind != "dry_run":
            console.print(f"{kind:>16}: {verb} {count}")


schedules_app = typer.Typer(help="Temporal Schedules (token refresh sweep, reconciliation, cleanup).")
app.add_typer(schedules_app, name="schedules")


@schedules_app.command("list")
def schedules_list() -> None:
    """Each schedule, its interval and its next runs (the same as the Temporal UI's Schedules page)."""
    from nexus.core.temporal import connect
    from nexus.ops.schedules import list_schedules
    from nexus.runtime import Runtime

    settings = get_settings()

    async def go() -> list[Any]:
        client = await connect(settings)
        runtime = Runtime.build(settings, client=client)
        try:
            return await list_schedules(client, runtime)
        finally:
            await runtime.close()

    try:
        found = run_async(go())
    except Exception as exc:
        console.print(f"[red]cannot list schedules: {exc} (is the stack up? `make up`)")
        raise typer.Exit(1) from exc
    for info in found:
        nxt = ", ".join(t.isoformat(timespec="seconds") for t in info.next_runs) or "-"
        state = "paused" if info.paused else "active"
        console.print(
            f"{info.id}  {info.workflow}  every {info.every}  {state}  runs so far {info.recent_runs}  next {nxt}"
        )


if __name__ == "__main__":
    app()


reembed_app = typer.Typer(help="The search index's embedding models (admin role).", no_args_is_help=True)
app.add_typer(reembed_app, name="reembed")


@reembed_app.command("status")
def reembed_status() -> None:
    """The index's embedding models: the active one, a backfill's progress, vectors kept and dropped."""
    from nexus.client import ApiError

    try:
        status = _client().request("GET", "/api/admin/embeddings")
    except ApiError as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
    table = Table("id", "model", "dims", "status", "vectors", "to embed", "memories", "since", title="embedding models")
    for m in status["models"]:
        name = f"{m['name']}@{(m['digest'] or 'unknown')[:12]}"
        since = m["dropped_at"] or m["retired_at"] or m["activated_at"] or m["created_at"]
        status_text = f"{m['status']} (dropped)" if m["dropped_at"] else m["status"]
        cells = [str(m["id"]), name, str(m["dims"]), status_text, str(m["vectors"]), str(m["missing"])]
        table.add_row(*cells, str(m["memories"]), (since or "")[:19])
    console.print(table)
    console.print(f"queries use {status['active']}; this API is configured with {status['configured']}")


@reembed_app.command("start")
def reembed_start(
    model: Annotated[
        str | None, typer.Option(help="Model spec (default: NEXUS_EMBEDDING_MODEL): '', static-64 or a model dir.")
    ] = None,
) -> None:
    """Register a model and re-embed the archive with it; search switches to it once every passage has its vector
    (the workflows worker does the same at start for NEXUS_EMBEDDING_MODEL)."""
    from nexus.ops.reembed import start
    from nexus.runtime import Runtime

    settings = get_settings()
    spec = settings.embedding_model if model is None else model

    async def go() -> tuple[Any, bool]:
        from nexus.core.db import database_url_for_command
        from nexus.core.temporal import connect

        client = await connect(settings)
        with database_url_for_command(settings) as url:
            runtime = Runtime.build(settings.model_copy(update={"database_url": url}), client=client)
            try:
                return await start(runtime, client, spec)
            finally:
                await runtime.engine.dispose()

    row, started = run_async(go())
    what = f"{row.name} ({row.dims}-d, model {row.id})"
    if started:
        console.print(f"re-embedding with {what}: follow it with `nexus reembed status`")
    else:
        console.print(f"{what} is already the active model: nothing to do")
