"""re-transcription: job kinds and requests, drafts swapped in when complete

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("media_jobs", sa.Column("kind", sa.String(length=20), server_default="process", nullable=False))
    op.add_column("media_jobs", sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_table(
        "transcript_drafts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("media_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("transcript", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("enrichment", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["media_jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["media_id"], ["media_items.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id"),
    )
    op.create_index("ix_transcript_drafts_media_id", "transcript_drafts", ["media_id"])
    op.create_index("ix_transcript_drafts_owner_id", "transcript_drafts", ["owner_id"])


def downgrade() -> None:
    op.drop_index("ix_transcript_drafts_owner_id", table_name="transcript_drafts")
    op.drop_index("ix_transcript_drafts_media_id", table_name="transcript_drafts")
    op.drop_table("transcript_drafts")
    op.drop_column("media_jobs", "request")
    op.drop_column("media_jobs", "kind")
