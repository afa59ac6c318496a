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
    op.create_table('df_branch_protection',
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=128), nullable=False),
    sa.Column('checks', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('repo', 'branch')
    )
    op.create_table('df_commit_parents',
    sa.Column('commit', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('parent', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('commit', 'position')
    )
    op.create_index('ix_df_commit_parents_parent', 'df_commit_parents', ['parent'], unique=False)
    op.create_table('df_s3_keys',
    sa.Column('access_key_id', sa.String(length=32), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('secret', sa.LargeBinary(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('access_key_id')
    )
    op.create_index('ix_df_s3_keys_user', 'df_s3_keys', ['user'], unique=False)
    op.create_table('df_pipeline_repos',
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('pipeline', 'repo')
    )
    op.create_table('df_s3_upload_info',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('meta', sa.Text(), nullable=False),
    sa.Column('parts', sa.Text(), nullable=True),
    sa.Column('etag', sa.String(length=64), nullable=True),
    sa.Column('commit', sa.String(length=32), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('df_tags',
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('commit', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('creator', sa.String(length=128), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('repo', 'name')
    )
    op.create_index('ix_df_tags_commit', 'df_tags', ['commit'], unique=False)
    op.add_column('df_datums', sa.Column('owner', sa.String(length=80), nullable=True))
    op.add_column('df_datums', sa.Column('lease_until', sa.Float(), nullable=True))
    op.create_index('ix_df_datums_job_state', 'df_datums', ['job', 'state'], unique=False)
    op.add_column('df_jobs', sa.Column('owner', sa.String(length=80), nullable=True))
    op.add_column('df_jobs', sa.Column('lease_until', sa.Float(), nullable=True))
    op.create_table('df_commit_leases',
    sa.Column('commit', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=True),
    sa.Column('expires', sa.Float(), nullable=True),
    sa.Column('ttl', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('commit')
    )
    op.create_index('ix_df_commit_leases_expires', 'df_commit_leases', ['expires'], unique=False)
    op.create_table('df_writes',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner', sa.String(length=256), nullable=False),
    sa.Column('started', sa.Float(), nullable=False),
    sa.Column('expires', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('df_pins',
    sa.Column('write', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('write', 'key')
    )
    op.create_index('ix_df_pins_key', 'df_pins', ['key'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_df_pins_key', table_name='df_pins')
    op.drop_table('df_pins')
    op.drop_table('df_writes')
    op.drop_index('ix_df_commit_leases_expires', table_name='df_commit_leases')
    op.drop_table('df_commit_leases')
    op.drop_table('df_pipeline_repos')
    op.drop_index('ix_df_s3_keys_user', table_name='df_s3_keys')
    op.drop_table('df_s3_keys')
    op.drop_column('df_jobs', 'lease_until')
    op.drop_column('df_jobs', 'owner')
    op.drop_index('ix_df_datums_job_state', table_name='df_datums')
    op.drop_column('df_datums', 'lease_until')
    op.drop_column('df_datums', 'owner')
    op.drop_index('ix_df_tags_commit', table_name='df_tags')
    op.drop_table('df_tags')
    op.drop_table('df_s3_upload_info')
    op.drop_index('ix_df_commit_parents_parent', table_name='df_commit_parents')
    op.drop_table('df_commit_parents')
    op.drop_table('df_branch_protection')
