"""passage vectors in a table per embedding model

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As nexus.llm.registry.vector_table_ddl at the time of writing (a migration never imports code that may change).
HNSW_WITH = "m = 16, ef_construction = 64"


def _ddl(model_id: int, dims: int) -> list[str]:
    name = f"chunk_vectors_{model_id}"
    return [
        f"""CREATE TABLE IF NOT EXISTS {name} (
                chunk_id uuid PRIMARY KEY REFERENCES media_chunks(id) ON DELETE CASCADE,
                media_id uuid NOT NULL REFERENCES media_items(id) ON DELETE CASCADE,
                embedding vector({dims}) NOT NULL)""",
        f"CREATE INDEX IF NOT EXISTS ix_{name}_media_id ON {name} (media_id)",
        f"CREATE INDEX IF NOT EXISTS ix_{name}_hnsw ON {name} USING hnsw (embedding vector_cosine_ops) "
        f"WITH ({HNSW_WITH})",
    ]


def upgrade() -> None:
    # What loads the model (NEXUS_EMBEDDING_MODEL's value: "" = the shipped one), and when a retired model's vectors
    # may be dropped / were dropped.
    op.add_column("embedding_models", sa.Column("spec", sa.String(length=500), server_default="", nullable=False))
    op.add_column("embedding_models", sa.Column("drop_after", sa.DateTime(timezone=True), nullable=True))
    op.add_column("embedding_models", sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=True))
    conn = op.get_bind()
    model_id, dims = conn.execute(sa.text("SELECT id, dims FROM embedding_models WHERE status = 'active'")).one()
    name = f"chunk_vectors_{model_id}"
    create, media_index, hnsw = _ddl(model_id, dims)
    op.execute(create)
    # Load first, index after: one HNSW build instead of an insert per vector into the graph.
    op.execute(f"INSERT INTO {name} (chunk_id, media_id, embedding) SELECT id, media_id, embedding FROM media_chunks")
    op.execute(media_index)
    op.execute(hnsw)
    op.drop_index("ix_media_chunks_embedding_hnsw", table_name="media_chunks")
    op.drop_column("media_chunks", "embedding")
    op.drop_column("media_chunks", "embedding_model")  # the registry knows which model each table holds
    op.drop_column("media_chunks", "dims")


def downgrade() -> None:
    conn = op.get_bind()
    model_id = conn.execute(sa.text("SELECT id FROM embedding_models WHERE status = 'active'")).scalar_one()
    op.execute("ALTER TABLE media_chunks ADD COLUMN embedding vector(384)")
    op.execute("ALTER TABLE media_chunks ADD COLUMN embedding_model varchar(100) NOT NULL DEFAULT 'all-MiniLM-L6-v2'")
    op.execute("ALTER TABLE media_chunks ADD COLUMN dims integer NOT NULL DEFAULT 384")
    op.execute(
        f"UPDATE media_chunks c SET embedding = v.embedding FROM chunk_vectors_{model_id} v WHERE v.chunk_id = c.id"
    )
    op.execute("DELETE FROM media_chunks WHERE embedding IS NULL")
    op.execute("ALTER TABLE media_chunks ALTER COLUMN embedding SET NOT NULL")
    op.execute(
        "CREATE INDEX ix_media_chunks_embedding_hnsw ON media_chunks USING hnsw (embedding vector_cosine_ops) "
        f"WITH ({HNSW_WITH})"
    )
    op.drop_column("embedding_models", "dropped_at")
    op.drop_column("embedding_models", "drop_after")
    op.drop_column("embedding_models", "spec")
    for (table,) in conn.execute(
        sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'chunk\\_vectors\\_%'")
    ):
        op.execute(f"DROP TABLE {table}")
