"""indexes for reading recent events (metrics, cleanup)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 11:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_job_events_created_at", "job_events", ["created_at"])
    op.create_index("ix_turn_events_created_at", "turn_events", ["created_at"])
    op.create_index("ix_chat_turns_created_at", "chat_turns", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_chat_turns_created_at", table_name="chat_turns")
    op.drop_index("ix_turn_events_created_at", table_name="turn_events")
    op.drop_index("ix_job_events_created_at", table_name="job_events")
