"""Cached access to the arena store, MLflow and Prefect: the only module of the app that calls the readers.

Why the split between two caches: `st.cache_resource` holds what is expensive to open and safe to share between
sessions (the store's engine and connection pool, the MLflow client), keyed by URL; `st.cache_data` holds query
results, keyed by URL + run + period. Every function takes the URL as an argument so that tests (and a monitor
pointed elsewhere) never read a stale store from the cache.

Freshness: the run list has a short TTL (`LIVE_TTL`) and is cheap (one row per run). Everything a round writes is
also keyed by the run's `version` (its `last_round`, read from that list): a new round is a new key, so a live run
shows up within seconds, while a finished run, or a paper run between two rounds, is computed once and served
from the cache (`ROUND_TTL` only bounds how long an idle entry lives). On a store with millions of fills a
leaderboard can take seconds; a refresh every few seconds must not recompute it when nothing was committed.
Things that change without a round (the kill switch, an operator's breaker reset) keep short TTLs.

The readers live in `arena_lib.monitor` and stay free of Streamlit; nothing here writes except `halt`/`resume`,
which go through `arena_lib.monitor.controls` (token-checked) and then clear the cached switch state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from arena_lib.arena.store import HaltState
from arena_lib.monitor import controls, leaderboard_sql, operations, queries, research
from arena_lib.monitor import risk as risk_stats
from arena_lib.monitor.store import open_store

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from arena_lib.arena.store import ArenaStore

LIVE_TTL = 5  # seconds: the run list (the version source), the last round, the kill switch
STORE_TTL = 15  # circuit breakers (an operator reset writes no round)
ROUND_TTL = 600  # results keyed by the run's version: recomputed when a round commits, else served from the cache
STATIC_TTL = 300  # a committed round never changes
RESEARCH_TTL = 60
OPS_TTL = 15


# -- the arena store --------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=8)
def store(url: str) -> ArenaStore:
    """The store at `url`, opened once per process (raises `StoreUnavailableError`, which is not cached)."""
    return open_store(url)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=32)
def runs(url: str) -> pd.DataFrame:
    return queries.list_runs(store(url), limit=500)


def run_version(url: str, run_id: str) -> int:
    """The run's last committed round (-1: none yet, or the run is gone): the cache key of round-derived results."""
    frame = runs(url)
    match = frame.loc[frame["run_id"] == run_id, "last_round"]
    return int(match.iloc[0]) if len(match) else -1


@st.cache_data(ttl=STORE_TTL, show_spinner=False, max_entries=64)
def agents(url: str, run_id: str) -> pd.DataFrame:
    return queries.run_agents(store(url), run_id)


@st.cache_data(ttl=ROUND_TTL, show_spinner="Computing the standings...", max_entries=64)
def leaderboard(
    url: str, run_id: str, start: pd.Timestamp | None, end: pd.Timestamp | None, version: int
) -> pd.DataFrame:
    """The standings for a period; `version` (the run's last round) keys the cache, see the module docstring."""
    return leaderboard_sql.leaderboard(store(url), run_id, start, end)


@st.cache_data(ttl=ROUND_TTL, show_spinner="Reading the equity curves...", max_entries=64)
def equity(url: str, run_id: str, start: pd.Timestamp | None, end: pd.Timestamp | None, version: int) -> pd.DataFrame:
    return queries.equity_curves(store(url), run_id, start=start, end=end, max_points=1500)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def fill_count(url: str, run_id: str, version: int) -> int:
    return queries.fill_count(store(url), run_id)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=64)
def last_round(url: str, run_id: str | None) -> queries.LastRound | None:
    return queries.last_round(store(url), run_id)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def positions(url: str, run_id: str, version: int, agent: str | None = None) -> pd.DataFrame:
    return queries.positions(store(url), run_id, agent)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def trades(url: str, run_id: str, version: int, agent: str | None = None, limit: int = 500) -> pd.DataFrame:
    return queries.trades(store(url), run_id, agent, limit=limit)


@st.cache_data(ttl=ROUND_TTL, show_spinner="Replaying the run through the simulator...", max_entries=16)
def twin_gap(url: str, run_id: str, version: int) -> pd.DataFrame:
    return queries.twin_gap(store(url), run_id)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def decision_rounds(url: str, run_id: str, agent: str, version: int, limit: int = 500) -> pd.DataFrame:
    return queries.decision_rounds(store(url), run_id, agent, limit=limit)


@st.cache_data(ttl=STATIC_TTL, show_spinner=False, max_entries=256)
def round_detail(url: str, run_id: str, agent: str, round_no: int) -> queries.RoundDetail | None:
    return queries.round_detail(store(url), run_id, agent, round_no)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def exposure(url: str, run_id: str, version: int) -> pd.DataFrame:
    return queries.exposure(store(url), run_id)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def returns(url: str, run_id: str, version: int) -> pd.DataFrame:
    """Per-bar returns of every agent and of the whole book ("portfolio"), newest 5,000 bars."""
    return queries.agent_returns(store(url), run_id, max_points=5000, portfolio=True)


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def var_table(url: str, run_id: str, version: int) -> pd.DataFrame:
    return risk_stats.var_cvar(returns(url, run_id, version), levels=(0.95, 0.99))


@st.cache_data(ttl=ROUND_TTL, show_spinner=False, max_entries=64)
def correlations(url: str, run_id: str, version: int) -> pd.DataFrame:
    wide = returns(url, run_id, version)
    return risk_stats.correlation(wide.drop(columns=[c for c in wide.columns if c.startswith("portfolio")]))


@st.cache_data(ttl=STORE_TTL, show_spinner=False, max_entries=64)
def breakers(url: str, run_id: str) -> pd.DataFrame | None:
    """Circuit-breaker states, or None when this installation has no breaker module."""
    try:
        from arena_lib.arena.breakers import breaker_frame
    except ImportError:
        return None
    return breaker_frame(store(url), run_id)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False, max_entries=16)
def halt_state(url: str) -> HaltState | None:
    return controls.switch_state(store(url))


def halt(url: str, token: str, reason: str) -> HaltState:
    """Halt all trading through the token-checked control, then drop the cached switch state."""
    state = controls.halt_all(store(url), token, reason)
    halt_state.clear()
    return state


def resume(url: str, token: str) -> HaltState:
    """Resume trading through the token-checked control, then drop the cached switch state."""
    state = controls.resume_all(store(url), token)
    halt_state.clear()
    return state


# -- MLflow -----------------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False, max_entries=4)
def mlflow_client(uri: str) -> MlflowClient:
    """One client per tracking URI (raises `TrackingUnavailableError`, which is not cached)."""
    return research.open_client(uri)


@st.cache_data(ttl=RESEARCH_TTL, show_spinner=False, max_entries=8)
def experiments(uri: str) -> pd.DataFrame:
    return research.experiments(mlflow_client(uri))


@st.cache_data(ttl=RESEARCH_TTL, show_spinner=False, max_entries=32)
def mlflow_runs(uri: str, experiment_ids: tuple[str, ...] | None, max_results: int = 100) -> pd.DataFrame:
    ids = list(experiment_ids) if experiment_ids is not None else None
    return research.runs(mlflow_client(uri), ids, max_results=max_results)


@st.cache_data(ttl=RESEARCH_TTL, show_spinner=False, max_entries=8)
def registered_models(uri: str) -> pd.DataFrame:
    return research.registered_models(mlflow_client(uri))


@st.cache_data(ttl=RESEARCH_TTL, show_spinner=False, max_entries=8)
def gate_reports(uri: str) -> tuple[pd.DataFrame, dict[tuple[str, str], dict[str, Any]]]:
    return research.gate_reports(mlflow_client(uri), max_runs=50)


# -- operations -------------------------------------------------------------------------------------------------
@st.cache_data(ttl=OPS_TTL, show_spinner=False, max_entries=4)
def prefect(api_url: str | None) -> operations.PrefectStatus:
    """Prefect's status for `api_url` (None: not connected; nothing is contacted)."""
    if api_url is None:
        return operations.prefect_status(now=pd.Timestamp.now(tz="UTC"), env={})
    return operations.prefect_status(api_url, now=pd.Timestamp.now(tz="UTC"))


@st.cache_data(ttl=60, show_spinner=False, max_entries=4)
def freshness(cache_root: str | None) -> pd.DataFrame:
    from pathlib import Path

    root = Path(cache_root) if cache_root else None
    return operations.data_freshness(pd.Timestamp.now(tz="UTC"), cache_root=root)


def clear_all() -> None:
    """Drop every cached result and resource (tests, and the sidebar's refresh button)."""
    st.cache_data.clear()
    st.cache_resource.clear()
