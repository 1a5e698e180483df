"""Contacts indexed by session and id: the contact list reads a page in order, no sort

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 22:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_contacts_session_id_id"), "contacts", ["session_id", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_contacts_session_id_id"), table_name="contacts")
