"""The monitor's library side: read-only queries over the arena store and risk statistics for the Streamlit app.

`store` opens the store and holds the reading helpers the queries share; `leaderboard_sql` computes the arena
board in SQL; `queries` answers the pages with SQL that aggregates or limits in the database (a store can hold
millions of fills); `risk` turns per-bar returns into VaR, CVaR and correlations. The app in `apps/monitor/`
imports these modules; the library never imports Streamlit.
"""
