"""Helpers the command modules share: load the config, open the store without a reactor."""

from __future__ import annotations

import argparse
from typing import Any, Callable, TypeVar

from abook.config import AbookConfig, load_config
from abook.store import Store, make_engine, schema

T = TypeVar("T")


def config_of(args: argparse.Namespace) -> AbookConfig:
    return load_config(args.config)


def open_store(config: AbookConfig, *, check: bool = True) -> Store:
    """A Store for command-line use: transactions run in the calling thread."""
    store = Store(make_engine(config.store_url))
    if check:
        schema.check(store.engine)
    return store


def in_store(config: AbookConfig, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(session, ...)`` in one transaction on the configured store, then close the store."""
    store = open_store(config)
    try:
        with store.transaction() as session:
            return fn(session, *args, **kwargs)
    finally:
        store.dispose()
