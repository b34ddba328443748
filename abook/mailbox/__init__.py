"""Mailbox backends (POP3, IMAP, EWS, ...) behind one interface. Never imports the store."""
