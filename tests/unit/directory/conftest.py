"""Fixtures for directory tests: the small organisation on each database, and a search helper."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator

import pytest
from ldaptor import ldapfilter

from abook.directory.api import SUBTREE, Entry, SearchDone, SearchSpec
from abook.directory.search import StoreDirectory
from abook.directory.tree import Tree
from abook.store import Store, security
from abook.store.records import Principal
from tests.helpers import failure_result_of, success_result_of
from tests.helpers import new_store
from tests.unit.directory.org import Org, build


@dataclass
class Result:
    entries: list[Entry]
    done: SearchDone

    @property
    def dns(self) -> list[str]:
        return [e.dn for e in self.entries]

    @property
    def ids(self) -> set[str]:
        return {e.dn.split(",")[0][4:] for e in self.entries if e.dn.startswith("uid=")}

    def attrs(self, dn_prefix: str) -> dict[str, tuple[bytes, ...]]:
        for e in self.entries:
            if e.dn.startswith(dn_prefix):
                return dict(e.attributes)
        raise KeyError(dn_prefix)


class Searcher:
    def __init__(self, store: Store, org: Org, batch_size: int = 500) -> None:
        self.store, self.org = store, org
        self.directory = StoreDirectory(store, Tree("o=crm"), batch_size=batch_size)
        self._principals: dict[str, Principal | None] = {}

    def principal(self, user: str | None) -> Principal | None:
        if user is None:
            return None
        if user not in self._principals:
            with self.store.transaction() as s:
                self._principals[user] = security.load_principal_txn(s, self.org.users[user])
        return self._principals[user]

    def spec(self, flt: Any = "(objectClass=*)", user: str | None = "admin", **kw: Any) -> SearchSpec:
        if isinstance(flt, str):
            flt = ldapfilter.parseFilter(flt)
        kw.setdefault("base", "o=crm")
        kw.setdefault("scope", SUBTREE)
        return SearchSpec(filter=flt, principal=self.principal(user), **kw)

    def run(self, spec: SearchSpec) -> Result:
        out: list[Entry] = []
        done = success_result_of(self.directory.search(spec, out.append))
        return Result(out, done)

    def __call__(self, flt: Any = "(objectClass=*)", user: str | None = "admin", **kw: Any) -> Result:
        return self.run(self.spec(flt, user, **kw))

    def fails(self, flt: Any = "(objectClass=*)", user: str | None = "admin", **kw: Any) -> Any:
        out: list[Entry] = []
        return failure_result_of(self.directory.search(self.spec(flt, user, **kw), out.append)).value


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def org_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Org]]:
    """The small organisation, built once per database for the read-only tests."""
    store = new_store(request.param, request, tmp_path_factory.mktemp("dir"))
    with store.transaction() as s:
        org = build(s)
    yield store, org
    store.dispose()


@pytest.fixture
def search(org_store: tuple[Store, Org]) -> Searcher:
    """Searches over the shared organisation (tests using it must not change the store)."""
    return Searcher(*org_store)


@pytest.fixture
def fresh_search(store: Store) -> Searcher:
    """Searches over an organisation of the test's own, which it may change."""
    with store.transaction() as s:
        org = build(s)
    return Searcher(store, org)


__all__ = ["Result", "Searcher", "replace"]
