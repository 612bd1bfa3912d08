"""First-run setup: a local admin and an API key written to `$NEXUS_DATA_DIR/dev-api-key` (mode 0600)."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from nexus.core.db import session_scope
from nexus.identity.service import authenticate_api_key, create_user, get_user_by_email, issue_api_key

LOCAL_ADMIN_EMAIL = "admin@localhost"


def write_secret_file(path: Path, content: str) -> None:
    """Create with 0600 from the start (no window where the key is world-readable), then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content + "\n")
    os.replace(tmp, path)


async def ensure_local_admin(engine: AsyncEngine, key_file: Path) -> bool:
    """Reuse the key in `key_file` while it is valid; otherwise issue one. Returns True when a key was issued."""
    async with session_scope(engine) as session:
        if key_file.exists() and await authenticate_api_key(session, key_file.read_text().strip()):
            return False
        user = await get_user_by_email(session, LOCAL_ADMIN_EMAIL) or await create_user(
            session, LOCAL_ADMIN_EMAIL, name="Local admin", is_admin=True
        )
        issued = await issue_api_key(session, user, name="dev-api-key")
    write_secret_file(key_file, issued.token)
    return True
