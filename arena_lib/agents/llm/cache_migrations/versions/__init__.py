"""Revisions of the LLM response cache, oldest first (the package marker ships them in wheels; alembic skips it)."""
