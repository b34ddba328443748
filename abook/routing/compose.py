"""`abook email compose`: a CRM email in Pending Send (``store/emails.create_email_txn``) with its tracking
token allocated at once (``tracking``), in one transaction, so the token is known before the mail leaves."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from abook.config.model import AbookConfig
from abook.store.emails import Composed, Draft, create_email_txn
from abook.tracking.api import token_for_email_txn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def compose_txn(session: Session, draft: Draft, config: AbookConfig) -> Composed:
    composed = create_email_txn(session, draft, config)
    return replace(composed, token=token_for_email_txn(session, composed.activity_id, config.tracking))
