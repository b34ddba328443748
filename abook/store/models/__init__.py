"""The CRM store's tables: SQLAlchemy 2 typed declarative mappings, and nothing else, one module per domain
(``org``, ``records``, ``activities``, ``mail``; ``base`` holds the declarative base). Import them from here.

Field names follow Microsoft Dynamics CRM 4.0 where one exists (emailaddress1, internalemailaddress,
statecode, ...), so admins recognise them. Every record id is a GUID kept as its 36-character text form.

Indexes serve the queries of the layers above:

* every email field of every entity has an index on ``lower(field)``, so resolving an address (tracking,
  binds by mail, the LDAP ``(mail=...)`` lookup) is an index probe, never a scan;
* owner and business-unit columns are indexed for the visibility predicate (``store/security.py``);
* substring and prefix search over names and mail is served by the trigram index built in
  ``store/search_index.py`` (SQLite FTS5 trigram / PostgreSQL pg_trgm).
"""

from __future__ import annotations

# The codes live in enums.py; they are named here too so ``from abook.store.models import State`` keeps working
# inside the store.
from abook.store.enums import (  # noqa: F401
    ADDRESS_BOOK_MATCHING,
    BU_OWNED,
    EMAIL_FIELDS,
    ENTITIES,
    INCOMING_METHODS,
    OUTGOING_METHODS,
    TRACKING_OPTIONS,
    USER_OWNED,
    EmailStatus,
    ParticipationType,
    ReadDepth,
    State,
)
from abook.store.keys import new_id, utcnow  # noqa: F401
# in table order (the order they were declared in before the split)
from abook.store.models.base import Base, MailSettingsMixin  # noqa: F401, E402
from abook.store.models.org import (  # noqa: F401, E402
    BusinessUnit,
    Equipment,
    Queue,
    Role,
    RolePrivilege,
    SystemUser,
    user_roles,
)
from abook.store.models.records import ENTITY_MODELS, Account, Contact, Lead, PartyFieldsMixin  # noqa: F401, E402
from abook.store.models.activities import (  # noqa: F401, E402
    Activity,
    ActivityParty,
    Attachment,
    Email,
    EmailSighting,
    UntrackedMessage,
)
from abook.store.models.mail import MailArrival, MailboxState, Setting  # noqa: F401, E402


# Mappings kept in domain modules of their own register on ``Base.metadata`` here, so whoever imports the
# models (Alembic, the schema test) sees every table.
from abook.store import daemons as _daemons  # noqa: E402,F401
from abook.store import sync_links as _sync_links  # noqa: E402,F401
from abook.store import sync_leases as _sync_leases  # noqa: E402,F401
from abook.store import replies as _replies  # noqa: E402,F401
