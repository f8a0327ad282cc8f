"""The arena ledger's alembic migration history (`versions/`), run on open by `arena_lib.core.migrations`.

`env.py` is alembic's entry point; its body is `arena_lib.core.migrations.run_environment`. The history is
described by `arena_lib.arena.schema.MIGRATIONS`. A new revision: change `schema.py`, then run
``alembic.command.revision(alembic_config(MIGRATIONS, url="sqlite:////tmp/x.db"), "what changed",
autogenerate=True, rev_id="000N_what_changed")`` against a database at head, review the script (keep
operations portable: SQLite and PostgreSQL, batch mode for ALTERs on SQLite) and add a test.
"""
