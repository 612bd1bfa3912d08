"""media_items.has_video: whether the kept original has a picture (the console plays it as video, or as audio)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("media_items", sa.Column("has_video", sa.Boolean(), nullable=True))


def downgrade() -> None:
    op.drop_column("media_items", "has_video")
