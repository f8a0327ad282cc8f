"""Prefect flows: thin orchestration over `arena_lib` (which never imports Prefect).

Importing this package points Prefect at a project-local home (`.arena/prefect`) with analytics off, unless the
operator set `PREFECT_HOME` / `PREFECT_API_URL` themselves: a local run never writes to `~/.prefect`, and scale-out is
only configuration (`PREFECT_API_URL=http://server:4200/api`).
"""

from flows.settings import configure_prefect

configure_prefect()
