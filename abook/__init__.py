"""abook: CRM address books over LDAP, email tracking and routing, Exchange synchronisation.

Importing this package starts nothing and imports no reactor.
"""

__version__ = "0.1.0"
