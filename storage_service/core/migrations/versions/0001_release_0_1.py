"""The schema of datumflow 0.1, the first release (before migrations existed).

A store made by 0.1 has these tables and no ``alembic_version``;
:func:`datumflow.storage_service.core.migrations.current` reads such a store
as being at this revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('df_branch_provenance',
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=128), nullable=False),
    sa.Column('up_repo', sa.String(length=64), nullable=False),
    sa.Column('up_branch', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('repo', 'branch', 'up_repo', 'up_branch')
    )
    op.create_index('ix_df_branch_prov_up', 'df_branch_provenance', ['up_repo', 'up_branch'], unique=False)
    op.create_table('df_chunks',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('pack', sa.String(length=32), nullable=False),
    sa.Column('offset', sa.BigInteger(), nullable=False),
    sa.Column('length', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_index('ix_df_chunks_pack', 'df_chunks', ['pack'], unique=False)
    op.create_table('df_commit_provenance',
    sa.Column('commit', sa.String(length=32), nullable=False),
    sa.Column('upstream', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('commit', 'upstream')
    )
    op.create_index('ix_df_commit_prov_up', 'df_commit_provenance', ['upstream'], unique=False)
    op.create_table('df_commits',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=128), nullable=True),
    sa.Column('parent', sa.String(length=32), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('meta', sa.Text(), nullable=False),
    sa.Column('started', sa.Float(), nullable=False),
    sa.Column('finished', sa.Float(), nullable=True),
    sa.Column('commit_set', sa.String(length=32), nullable=False),
    sa.Column('root', sa.String(length=64), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('file_count', sa.BigInteger(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_df_commits_parent', 'df_commits', ['parent'], unique=False)
    op.create_index('ix_df_commits_repo_seq', 'df_commits', ['repo', 'seq'], unique=False)
    op.create_index('ix_df_commits_set', 'df_commits', ['commit_set'], unique=False)
    op.create_table('df_datum_cache',
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('outputs', sa.Text(), nullable=False),
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('datum', sa.String(length=64), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('pipeline', 'hash')
    )
    op.create_table('df_datums',
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('inputs', sa.Text(), nullable=False),
    sa.Column('outputs', sa.Text(), nullable=True),
    sa.Column('reused_from', sa.String(length=32), nullable=True),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('log', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started', sa.Float(), nullable=True),
    sa.Column('finished', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('job', 'id')
    )
    op.create_table('df_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('pipeline', sa.String(length=64), nullable=False),
    sa.Column('output_commit', sa.String(length=32), nullable=False),
    sa.Column('commit_set', sa.String(length=32), nullable=False),
    sa.Column('spec_commit', sa.String(length=32), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('reprocess', sa.Integer(), nullable=False),
    sa.Column('inputs', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.Column('started', sa.Float(), nullable=True),
    sa.Column('finished', sa.Float(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('processed', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('recovered', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('output_commit')
    )
    op.create_index('ix_df_jobs_commit_set', 'df_jobs', ['commit_set'], unique=False)
    op.create_index('ix_df_jobs_pipeline_seq', 'df_jobs', ['pipeline', 'seq'], unique=False)
    op.create_table('df_lineage',
    sa.Column('commit', sa.String(length=32), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('job', sa.String(length=32), nullable=False),
    sa.Column('datum', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('commit', 'path')
    )
    op.create_table('df_nodes',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('df_packs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('df_pipelines',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('spec_commit', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.Column('updated', sa.Float(), nullable=False),
    sa.Column('last_tick', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('df_repos',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('df_roles',
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('user', 'repo')
    )
    op.create_table('df_s3_parts',
    sa.Column('upload', sa.String(length=32), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('etag', sa.String(length=64), nullable=False),
    sa.Column('chunks', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('upload', 'number')
    )
    op.create_table('df_s3_uploads',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=128), nullable=False),
    sa.Column('key', sa.Text(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_df_s3_uploads_branch', 'df_s3_uploads', ['repo', 'branch'], unique=False)
    op.create_table('df_spouts',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('config', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('stop_requested', sa.Boolean(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('started', sa.Float(), nullable=False),
    sa.Column('heartbeat', sa.Float(), nullable=False),
    sa.Column('last_commit', sa.String(length=32), nullable=True),
    sa.Column('messages', sa.Integer(), nullable=False),
    sa.Column('commits', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('df_tokens',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_index('ix_df_tokens_user', 'df_tokens', ['user'], unique=False)
    op.create_table('df_users',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.Column('created', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('df_branches',
    sa.Column('repo', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('head', sa.String(length=32), nullable=True),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('created', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['repo'], ['df_repos.name'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo', 'name')
    )


def downgrade() -> None:
    op.drop_table('df_branches')
    op.drop_table('df_users')
    op.drop_table('df_tokens')
    op.drop_table('df_spouts')
    op.drop_table('df_s3_uploads')
    op.drop_table('df_s3_parts')
    op.drop_table('df_roles')
    op.drop_table('df_repos')
    op.drop_table('df_pipelines')
    op.drop_table('df_packs')
    op.drop_table('df_nodes')
    op.drop_table('df_lineage')
    op.drop_table('df_jobs')
    op.drop_table('df_datums')
    op.drop_table('df_datum_cache')
    op.drop_table('df_commits')
    op.drop_table('df_commit_provenance')
    op.drop_table('df_chunks')
    op.drop_table('df_branch_provenance')
