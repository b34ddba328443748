"""The declarative base every mapping registers on, and the email settings users and queues share."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class MailSettingsMixin:
    """Per-user (and per-queue) email settings of SPEC section 1."""

    tracking_option: Mapped[str] = mapped_column(String(16), default="all")
    incoming_method: Mapped[str] = mapped_column(String(16), default="none")
    outgoing_method: Mapped[str] = mapped_column(String(16), default="none")
