"""Alembic's entry point for the arena ledger's migrations (configured in code: no alembic.ini)."""

from __future__ import annotations

from alembic import context

from arena_lib.arena.schema import MIGRATIONS
from arena_lib.core.migrations import run_environment

run_environment(context, MIGRATIONS)
