"""listener tokens, public session ids, crawl job heartbeats

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 05:00:00

- listeners.token_hash: SHA-256 of the per-listener secret issued with the first recommendation (NULL for listeners
  created before this revision: their next recommendation issues one).
- recommendation_sessions.public_id: the unguessable id used in URLs; existing sessions get a random one.
- crawl_jobs.heartbeat_at, crawl_jobs.attempts: last sign of life of the worker running a job, and how often a
  worker claimed it (the sweep requeues a silent job, and fails it with the reason after a few attempts).
- crawl_jobs.origin: "api" for jobs created by POST /v1/crawls (crawled with public hosts only, redirects too).
The song failure stage and reason columns (songs.failed_stage, songs.failure_reason) already exist since 0001.
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("listeners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_listeners_token_hash"), ["token_hash"])

    with op.batch_alter_table("recommendation_sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    sessions = sa.table("recommendation_sessions", sa.column("id", sa.Integer()), sa.column("public_id", sa.String(32)))
    for (sid,) in conn.execute(sa.select(sessions.c.id)).all():
        conn.execute(sa.update(sessions).where(sessions.c.id == sid).values(public_id=secrets.token_urlsafe(16)))
    with op.batch_alter_table("recommendation_sessions", schema=None) as batch_op:
        batch_op.alter_column("public_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_recommendation_sessions_public_id"), ["public_id"])

    with op.batch_alter_table("crawl_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("origin", sa.String(length=16), server_default="cli", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("crawl_jobs", schema=None) as batch_op:
        batch_op.drop_column("origin")
        batch_op.drop_column("attempts")
        batch_op.drop_column("heartbeat_at")
    with op.batch_alter_table("recommendation_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_recommendation_sessions_public_id"), type_="unique")
        batch_op.drop_column("public_id")
    with op.batch_alter_table("listeners", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_listeners_token_hash"), type_="unique")
        batch_op.drop_column("token_hash")
