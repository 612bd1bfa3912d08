"""ws tickets (single-use credentials for opening a WebSocket); media_jobs.stage_attempt

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 04:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ws_tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(op.f("ix_ws_tickets_user_id"), "ws_tickets", ["user_id"], unique=False)
    op.add_column("media_jobs", sa.Column("stage_attempt", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    op.drop_column("media_jobs", "stage_attempt")
    op.drop_index(op.f("ix_ws_tickets_user_id"), table_name="ws_tickets")
    op.drop_table("ws_tickets")
