"""sign-in identities and OAuth states, session details, integrations (sealed tokens), shared rate limits, audit details

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 06:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start"),
    )
    op.create_table(
        "oauth_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("nonce", sa.String(length=128), nullable=True),
        sa.Column("code_verifier", sa.Text(), nullable=False),
        sa.Column("redirect_to", sa.String(length=2000), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("state_hash"),
    )
    op.create_index(op.f("ix_oauth_states_expires_at"), "oauth_states", ["expires_at"], unique=False)
    op.create_table(
        "user_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("provider", "subject"),
    )
    op.create_index(op.f("ix_user_identities_user_id"), "user_identities", ["user_id"], unique=False)
    op.create_table(
        "integrations",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("account_email", sa.String(length=320), nullable=True),
        sa.Column("scopes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        sa.Column("access_token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_token_issued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reauth_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("failure_days", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("refreshing_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("owner_id", "provider", "account_id"),
    )
    op.create_index(op.f("ix_integrations_owner_id"), "integrations", ["owner_id"], unique=False)
    op.create_index(op.f("ix_integrations_provider"), "integrations", ["provider"], unique=False)
    op.create_index(op.f("ix_integrations_status"), "integrations", ["status"], unique=False)
    op.create_index(op.f("ix_integrations_workspace_id"), "integrations", ["workspace_id"], unique=False)
    op.add_column("media_items", sa.Column("integration_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        "media_items_integration_id_fkey", "media_items", "integrations", ["integration_id"], ["id"], ondelete="SET NULL"
    )
    op.add_column("audit_log", sa.Column("outcome", sa.String(length=16), server_default="success", nullable=False))
    op.add_column("audit_log", sa.Column("ip", sa.String(length=64), nullable=True))
    op.add_column("audit_log", sa.Column("user_agent", sa.String(length=400), nullable=True))
    op.add_column(
        "sessions", sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)
    )
    op.add_column("sessions", sa.Column("user_agent", sa.String(length=400), nullable=True))
    op.add_column("sessions", sa.Column("ip", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_constraint("media_items_integration_id_fkey", "media_items", type_="foreignkey")
    op.drop_column("media_items", "integration_id")
    op.drop_column("sessions", "ip")
    op.drop_column("sessions", "user_agent")
    op.drop_column("sessions", "last_seen_at")
    op.drop_column("audit_log", "user_agent")
    op.drop_column("audit_log", "ip")
    op.drop_column("audit_log", "outcome")
    op.drop_index(op.f("ix_integrations_workspace_id"), table_name="integrations")
    op.drop_index(op.f("ix_integrations_status"), table_name="integrations")
    op.drop_index(op.f("ix_integrations_provider"), table_name="integrations")
    op.drop_index(op.f("ix_integrations_owner_id"), table_name="integrations")
    op.drop_table("integrations")
    op.drop_index(op.f("ix_user_identities_user_id"), table_name="user_identities")
    op.drop_table("user_identities")
    op.drop_index(op.f("ix_oauth_states_expires_at"), table_name="oauth_states")
    op.drop_table("oauth_states")
    op.drop_table("rate_limits")
