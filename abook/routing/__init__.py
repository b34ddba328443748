"""The router (SPEC section 4): mailbox pollers, the forward mailbox, outgoing SMTP and mailbox health."""
