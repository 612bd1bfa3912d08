"""translation track, suggested speaker names

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("transcript_segments", sa.Column("translation", sa.Text(), nullable=True))
    op.add_column("media_chunks", sa.Column("track", sa.String(length=16), server_default="transcript", nullable=False))
    op.add_column(
        "media_items",
        sa.Column("speaker_suggestions", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("media_items", "speaker_suggestions")
    op.drop_column("media_chunks", "track")
    op.drop_column("transcript_segments", "translation")
