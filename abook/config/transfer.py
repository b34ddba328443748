"""The ``[import]`` section: how ``abook import`` treats records that do not say everything."""

from __future__ import annotations

from typing import Literal

from abook.config.base import Section


class ImportConfig(Section):
    #: the entity plain inetOrgPerson entries (no crmEntity) become
    plain_ldif_entity: Literal["contact", "account", "lead"] = "contact"
    #: user name (domainname) owning imported records that name no owner
    default_owner: str = "admin"
