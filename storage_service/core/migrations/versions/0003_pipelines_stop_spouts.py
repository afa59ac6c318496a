"""Pipelines that stop and start, and spout pipelines: the ``stopped`` flag, the tokens a
pipeline's own process holds, and the record of each spout pipeline's process.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('df_pipelines', sa.Column('stopped', sa.Integer(), server_default='0', nullable=False))
    op.create_table('df_pipeline_tokens',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_index('ix_df_pipeline_tokens_pipeline', 'df_pipeline_tokens', ['pipeline'], unique=False)
    op.create_table('df_spout_runs',
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=80), nullable=True),
    sa.Column('lease_until', sa.Float(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('spec_commit', sa.String(length=32), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('started', sa.Float(), nullable=True),
    sa.Column('restarts', sa.Integer(), nullable=False),
    sa.Column('last_exit', sa.Integer(), nullable=True),
    sa.Column('log', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('pipeline')
    )


def downgrade() -> None:
    op.drop_table('df_spout_runs')
    op.drop_index('ix_df_pipeline_tokens_pipeline', table_name='df_pipeline_tokens')
    op.drop_table('df_pipeline_tokens')
    op.drop_column('df_pipelines', 'stopped')
