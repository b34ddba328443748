"""Email tracking: one raw message in, one email activity (or a recorded reason) out."""
