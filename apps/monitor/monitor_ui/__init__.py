"""The Streamlit side of the monitor: cached data access, the shared sidebar selection, theme, charts, components.

Pages in `apps/monitor/views/` import from here; the readers they call live in `arena_lib.monitor` (no Streamlit).
"""
