"""Revisions of the arena ledger, oldest first (the package marker ships them in wheels; alembic skips it)."""
