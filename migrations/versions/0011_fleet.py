"""deployment identity, worker registrations, Mem0 history in Postgres

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO deployment (id, created_at) VALUES (gen_random_uuid(), now())")
    op.create_table(
        "worker_registrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("identity", sa.String(length=300), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("queues", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("fingerprint", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_worker_registrations_identity", "worker_registrations", ["identity"])
    op.create_index("ix_worker_registrations_heartbeat_at", "worker_registrations", ["heartbeat_at"])
    op.create_table(
        "memory_history",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("memory_id", sa.String(length=64), nullable=True),
        sa.Column("old_memory", sa.Text(), nullable=True),
        sa.Column("new_memory", sa.Text(), nullable=True),
        sa.Column("event", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.String(length=64), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("actor_id", sa.String(length=255), nullable=True),
        sa.Column("role", sa.String(length=50), nullable=True),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_memory_history_memory_id", "memory_history", ["memory_id"])
    op.create_table(
        "memory_messages",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("session_scope", sa.String(length=500), nullable=False),
        sa.Column("role", sa.String(length=50), nullable=True),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_memory_messages_session_scope", "memory_messages", ["session_scope"])


def downgrade() -> None:
    op.drop_table("memory_messages")
    op.drop_table("memory_history")
    op.drop_table("worker_registrations")
    op.drop_table("deployment")
