"""registry of embedding models

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "embedding_models",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("dims", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    # One active model: what queries and new passages use.
    op.create_index(
        "uq_embedding_models_active", "embedding_models", ["status"], unique=True, postgresql_where="status = 'active'"
    )
    # The index so far was built by the shipped model (384-d vectors in media_chunks.embedding), or by whatever the
    # chunks name; its digest is adopted by the first process that runs a model of that name and size.
    op.execute(
        """INSERT INTO embedding_models (name, dims, status, created_at, activated_at)
           SELECT COALESCE((SELECT embedding_model FROM media_chunks GROUP BY embedding_model
                            ORDER BY count(*) DESC LIMIT 1), 'all-MiniLM-L6-v2'), 384, 'active', now(), now()"""
    )


def downgrade() -> None:
    op.drop_index("uq_embedding_models_active", table_name="embedding_models")
    op.drop_table("embedding_models")
