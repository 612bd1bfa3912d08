"""sessions.api_key_id: the API key a session was opened with (`POST /auth/session`), so revoking the key ends it

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 22:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("api_key_id", sa.Uuid(), sa.ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=True),
    )
    op.create_index("ix_sessions_api_key_id", "sessions", ["api_key_id"])


def downgrade() -> None:
    op.drop_index("ix_sessions_api_key_id", table_name="sessions")
    op.drop_column("sessions", "api_key_id")
