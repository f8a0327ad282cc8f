"""Live trading: fill sources, recorded rejections, a broker's state per account, and the kill switch's flatten.

Revision ID: 0003_live_trading
Revises: 0002_writer_leases
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_live_trading"
down_revision: str | None = "0002_writer_leases"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.add_column(sa.Column("source", sa.String(length=16), nullable=False, server_default="engine"))
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("broker_state", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("trading_halt") as batch:
        batch.add_column(sa.Column("flatten", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("round_no", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=200), nullable=False),
        sa.Column("symbol", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rejections_run_agent", "rejections", ["run_id", "agent", "round_no"])


def downgrade() -> None:
    op.drop_index("ix_rejections_run_agent", table_name="rejections")
    op.drop_table("rejections")
    with op.batch_alter_table("trading_halt") as batch:
        batch.drop_column("flatten")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("broker_state")
    with op.batch_alter_table("fills") as batch:
        batch.drop_column("source")
