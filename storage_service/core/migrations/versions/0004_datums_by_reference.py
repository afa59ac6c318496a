"""Jobs inherit their base job's unchanged datums, outputs and lineage by reference: ``df_jobs.base_job``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("df_jobs", sa.Column("base_job", sa.String(length=32), nullable=True))
    op.create_index("ix_df_jobs_base_job", "df_jobs", ["base_job"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_df_jobs_base_job", table_name="df_jobs")
    op.drop_column("df_jobs", "base_job")
