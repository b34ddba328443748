"""A user's contacts, calendar and tasks in their mailbox, as the sync engine sees them.

``interfaces.IPimStore`` is the one contract (vdirsyncer's ``Storage``): list with etags or change keys,
changes since a sync token, fetch, create, update and delete under an etag precondition, and find an item
by the CRM id it carries. Backends: ``memory`` (in process, for tests and benchmarks), ``dav`` (CardDAV
and CalDAV: Radicale, Nextcloud, SOGo) and ``ews`` (Exchange through exchangelib). ``schema`` holds the
mapped fields and their canonical text, which every backend converts its items to and from.
"""
