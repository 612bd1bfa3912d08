"""transcripts: languages, word timings, vocabulary

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 07:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "vocabularies",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("terms", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.add_column(
        "media_items",
        sa.Column("languages", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column(
        "media_items",
        sa.Column("transcription", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column("transcript_segments", sa.Column("language", sa.String(length=16), nullable=True))
    op.add_column("transcript_segments", sa.Column("original_text", sa.Text(), nullable=True))
    op.add_column(
        "media_items",
        sa.Column("speaker_names", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )
    op.add_column(
        "transcript_segments",
        sa.Column("words", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("media_items", "speaker_names")
    op.drop_column("transcript_segments", "original_text")
    op.drop_column("transcript_segments", "words")
    op.drop_column("transcript_segments", "language")
    op.drop_column("media_items", "transcription")
    op.drop_column("media_items", "languages")
    op.drop_table("vocabularies")
