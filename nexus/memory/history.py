"""Mem0's history and recent messages in our Postgres instead of a SQLite file per host.

Mem0 keeps both in `SQLiteManager` (a file in the data directory): with workers on several machines each host
would hold its own partial history and its own idea of a user's recent messages. This class has the same methods
over the `memory_history` and `memory_messages` tables (migration 0011), so every host reads and writes one copy.
Mem0 calls it from worker threads, synchronously: a short psycopg connection per call, autocommit, each call one
statement or one transaction.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

KEEP_MESSAGES = 10  # per session scope, as Mem0's SQLite store keeps

_HISTORY_COLUMNS = "id, memory_id, old_memory, new_memory, event, created_at, updated_at, is_deleted, actor_id, role"


def connect(conninfo: str) -> psycopg.Connection[Any]:
    """The short synchronous connection memory code uses from Mem0's threads."""
    return psycopg.connect(conninfo, autocommit=True, connect_timeout=10)


class PostgresHistory:
    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self.conninfo)

    def add_history(
        self,
        memory_id: str,
        old_memory: str | None,
        new_memory: str | None,
        event: str,
        *,
        created_at: str | None = None,
        updated_at: str | None = None,
        is_deleted: int = 0,
        actor_id: str | None = None,
        role: str | None = None,
    ) -> None:
        self.batch_add_history(
            [
                {
                    "memory_id": memory_id,
                    "old_memory": old_memory,
                    "new_memory": new_memory,
                    "event": event,
                    "created_at": created_at,
                    "updated_at": updated_at,
                    "is_deleted": is_deleted,
                    "actor_id": actor_id,
                    "role": role,
                }
            ]
        )

    def batch_add_history(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        rows = [
            (
                str(uuid.uuid4()),
                r.get("memory_id"),
                r.get("old_memory"),
                r.get("new_memory"),
                r.get("event"),
                r.get("created_at"),
                r.get("updated_at"),
                bool(r.get("is_deleted", 0)),
                r.get("actor_id"),
                r.get("role"),
            )
            for r in records
        ]
        with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(f"INSERT INTO memory_history ({_HISTORY_COLUMNS}) VALUES ({', '.join(['%s'] * 10)})", rows)

    def get_history(self, memory_id: str) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_HISTORY_COLUMNS} FROM memory_history WHERE memory_id = %s ORDER BY recorded_at",
                (memory_id,),
            ).fetchall()
        keys = [c.strip() for c in _HISTORY_COLUMNS.split(",")]
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def save_messages(self, messages: list[dict[str, Any]], session_scope: str) -> None:
        if not messages:
            return
        now = datetime.now(UTC)
        rows = [
            (str(uuid.uuid4()), session_scope, m.get("role"), m.get("content"), m.get("name"), now) for m in messages
        ]
        with self._connect() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO memory_messages (id, session_scope, role, content, name, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )
            cur.execute(
                "DELETE FROM memory_messages WHERE session_scope = %s AND id NOT IN ("
                " SELECT id FROM memory_messages WHERE session_scope = %s ORDER BY created_at DESC, id LIMIT %s)",
                (session_scope, session_scope, KEEP_MESSAGES),
            )

    def get_last_messages(self, session_scope: str, limit: int = KEEP_MESSAGES) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT role, content, name, created_at FROM ("
                " SELECT role, content, name, created_at, id FROM memory_messages WHERE session_scope = %s"
                " ORDER BY created_at DESC, id LIMIT %s) recent ORDER BY created_at",
                (session_scope, limit),
            ).fetchall()
        return [{"role": r[0], "content": r[1], "name": r[2], "created_at": r[3].isoformat()} for r in rows]

    def reset(self) -> None:
        """Mem0's `reset()` empties its history; here that means the rows, never the tables (the schema is ours)."""
        with self._connect() as conn, conn.transaction():
            conn.execute("DELETE FROM memory_history")
            conn.execute("DELETE FROM memory_messages")

    def close(self) -> None:
        """Nothing stays open between calls."""
