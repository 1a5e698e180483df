"""Outbox entries and send attempts indexed by session: deleting a session deletes its own
rows, not after a read of every session's (nothing is pruned, so both only grow)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_outbox_session_id"), "outbox", ["session_id"], unique=False)
    op.create_index(
        op.f("ix_send_attempts_session_id"), "send_attempts", ["session_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_send_attempts_session_id"), table_name="send_attempts")
    op.drop_index(op.f("ix_outbox_session_id"), table_name="outbox")
