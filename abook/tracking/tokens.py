"""Tracking tokens: ``<prefix><user number><counter>``, e.g. ``CRM:0010042``, and finding them in subjects.

The user number is ``token_base`` plus the user's tracking number, zero-padded to ``user_digits``; the
counter is the user's next token counter, zero-padded to ``counter_digits`` (numbers that outgrow their
width keep all their digits: a token is never reused). A token is found anywhere in a subject, after any
number of ``RE:``/``FW:``/``AW:``/``SV:`` prefixes, with the prefix matched case-insensitively and
optional blanks before the digits (some clients fold or re-space subjects).
"""

from __future__ import annotations

import re

from abook.config.model import TrackingConfig


def format_token(config: TrackingConfig, tracking_number: int, counter: int) -> str:
    user = str(config.token_base + tracking_number).zfill(config.user_digits)
    return f"{config.token_prefix}{user}{str(counter).zfill(config.counter_digits)}"


def _pattern(config: TrackingConfig) -> re.Pattern[str]:
    width = config.user_digits + config.counter_digits
    return re.compile(re.escape(config.token_prefix) + r"\s*(\d{%d,})(?!\d)" % width, re.IGNORECASE)


def find_tokens(config: TrackingConfig, subject: str) -> list[str]:
    """Every token in ``subject``, in canonical form (the configured prefix, digits), first one first."""
    return [config.token_prefix + digits for digits in _pattern(config).findall(subject or "")]


def with_token(config: TrackingConfig, subject: str, token: str) -> str:
    """The subject the router sends: the token appended once (never twice)."""
    subject = subject or ""
    if token in find_tokens(config, subject):
        return subject
    return f"{subject} {token}" if subject else token
