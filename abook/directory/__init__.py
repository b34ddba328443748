"""The LDAP view of the store: the tree, attribute mapping, filter compiler and search.

``api.py`` is the seam to the protocol server (``abook/server``): it only sees ``IDirectory``.
"""
