"""messages.tool_calls -> provider_results (it holds each provider's answer); one name per provider ("openai")

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("messages", "tool_calls", new_column_name="provider_results")
    op.execute("UPDATE messages SET provider = replace(provider, 'openai-compatible', 'openai')")
    op.execute(
        "UPDATE media_items SET enrichment_provider = 'openai' WHERE enrichment_provider = 'openai-compatible'"
    )


def downgrade() -> None:
    op.alter_column("messages", "provider_results", new_column_name="tool_calls")
