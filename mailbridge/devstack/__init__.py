"""The local dev mail stack: a private Dovecot and a dev SMTP server (`make run`, tests)."""
