"""Key rotation for secrets at rest: a new primary key, every sealed value re-wrapped in batches while the
service runs, then the old key can go.

Generic over every `EncryptedSecret` column in the schema. Each value's data key is re-wrapped with a
compare-and-set (`WHERE col = old`), so a token the refresh workflow writes meanwhile is never overwritten with
a stale one. A value that does not open is counted, logged and left alone (its row shows `needs_reauth` when used).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col, select

import models  # noqa: F401  (registers every table)
from models.base import utcnow
from models.ops import WorkerRegistration
from nexus.core.crypto import DecryptionError, EncryptedSecret, Keyring, key_id_of, new_key_entry
from nexus.core.db import session_scope
from nexus.identity import audit

log = logging.getLogger("nexus.security")
BATCH = 500


def sealed_columns() -> list[tuple[str, str]]:
    """(table, column) of every sealed column."""
    return [
        (table.name, column.name)
        for table in SQLModel.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EncryptedSecret)
    ]


@dataclass
class RewrapReport:
    rewrapped: int = 0
    current: int = 0  # already under the primary key
    unreadable: int = 0
    by_column: Counter[str] = field(default_factory=Counter)


async def rewrap_all(
    engine: AsyncEngine, keyring: Keyring, *, progress: Callable[[str, int], None] | None = None
) -> RewrapReport:
    report = RewrapReport()
    for table, column in sealed_columns():
        after = None
        while True:
            async with session_scope(engine) as session:
                rows = (
                    await session.execute(
                        text(
                            f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL"
                            + (" AND id > :after" if after else "")
                            + " ORDER BY id LIMIT :n"
                        ),
                        {"after": after, "n": BATCH},
                    )
                ).all()
                for row_id, sealed in rows:
                    if key_id_of(sealed) == keyring.primary_id:
                        report.current += 1
                        continue
                    try:
                        fresh = keyring.rewrap(sealed, f"{table}.{column}:{row_id}")
                    except DecryptionError as exc:
                        report.unreadable += 1
                        log.error(
                            "security: %s.%s of %s does not decrypt during rotation: %s", table, column, row_id, exc
                        )
                        continue
                    done = await session.execute(
                        text(f"UPDATE {table} SET {column} = :new WHERE id = :id AND {column} = :old"),
                        {"new": fresh, "id": row_id, "old": sealed},
                    )
                    if done.rowcount:  # type: ignore[attr-defined]
                        report.rewrapped += 1
                        report.by_column[f"{table}.{column}"] += 1
            if progress is not None:
                progress(f"{table}.{column}", len(rows))
            if len(rows) < BATCH:
                break
            after = rows[-1][0]
    return report


async def usage(engine: AsyncEngine) -> Counter[str]:
    """Sealed values per key id: a key with none left can be dropped."""
    counts: Counter[str] = Counter()
    async with session_scope(engine) as session:
        for table, column in sealed_columns():
            rows = await session.execute(
                text(
                    f"SELECT split_part({column}, '.', 2), count(*) FROM {table} WHERE {column} IS NOT NULL GROUP BY 1"
                )
            )
            for kid, n in rows:
                counts[kid] += n
    return counts


def _write_private(path: Path, content: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)
    os.replace(tmp, path)


def add_primary(path: Path) -> str:
    """Put a new key first in the key file; returns its id. Running processes pick it up when they meet it."""
    entry = new_key_entry()
    _write_private(path, "\n".join([entry] + [line for _, line in _raw(path)]) + "\n")
    return entry.split("=", 1)[0]


def drop_key(path: Path, kid: str) -> None:
    """Remove a retired key from the key file (check `usage` first: values still sealed with it would be lost)."""
    entries = _raw(path)
    if entries and entries[0][0] == kid:
        raise ValueError(f"{kid} is the primary key: rotate first")
    if kid not in dict(entries):
        raise ValueError(f"no key {kid} in {path}")
    _write_private(path, "\n".join(line for k, line in entries if k != kid) + "\n")


def _raw(path: Path) -> list[tuple[str, str]]:
    return [
        (line.split("=", 1)[0].strip(), line.strip())
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


async def record_rotation(engine: AsyncEngine, primary: str, report: RewrapReport) -> None:
    await audit.record_now(
        engine,
        "keys.rotate",
        target_type="keyring",
        target_id=primary,
        outcome="success" if not report.unreadable else "partial",
        details={"rewrapped": report.rewrapped, "unreadable": report.unreadable},
    )


async def workers_behind(engine: AsyncEngine, keyring: Keyring, stale_after_s: float) -> list[str]:
    """Live workers (reported within `stale_after_s`) whose keyring is not `keyring` (the key file's after a
    rotation): they may still seal payloads with a key about to go. A worker reading the file catches up at its
    next report; one given NEXUS_SECRET_KEYS needs a restart with the new keys."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    want = keyring.fingerprint()
    async with session_scope(engine) as session:
        rows = (
            await session.execute(select(WorkerRegistration).where(col(WorkerRegistration.heartbeat_at) >= cutoff))
        ).scalars()
        return [f"{r.identity} ({','.join(r.queues)})" for r in rows if r.fingerprint.get("keyring") != want]
