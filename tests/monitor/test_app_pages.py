"""Every page of the monitor under Streamlit's AppTest: the demo store, an empty store and an unreadable one.

What each page must do is asserted on what it renders (titles, metrics, charts, tables, messages), not on how: a
new install gets guidance, a corrupt store a clear message (never a traceback), the demo store the real figures.
The kill switch is exercised on an empty store of the test's own (the demo store is shared and read-only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from arena_lib.analytics.columns import ARENA_BOARD
from arena_lib.arena.store import ArenaStore
from arena_lib.monitor.controls import ACTOR, TOKEN_ENV
from tests.monitor.test_research_reader import Store, build_store
from tests.tool_homes import reset_mlflow

APP = Path(__file__).resolve().parents[2] / "apps" / "monitor" / "app.py"
PAGES = {
    "views/leaderboard.py": "Leaderboard",
    "views/agent.py": "Agent detail",
    "views/risk.py": "Risk",
    "views/research.py": "Research",
    "views/operations.py": "Operations",
}
RUN_PAGES = ("views/leaderboard.py", "views/agent.py", "views/risk.py")
DEMO_AGENTS = {"cash", "buy_and_hold", "sma_cross", "momentum", "scalper", "roundtrip"}
TOKEN = "tok-3f9a8c2e-operator"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No developer settings leak in: no token, no Prefect, an MLflow store that does not exist yet; fresh caches."""
    for name in (TOKEN_ENV, "PREFECT_API_URL", "PREFECT_API_KEY", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-mlflow' / 'mlflow.db'}")
    monkeypatch.setenv("ARENA_DATA_CACHE", str(tmp_path / "no-cache"))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


def open_app(url: str, monkeypatch: pytest.MonkeyPatch, page: str | None = None) -> AppTest:
    """The app on the store at `url`, run once (on `page` when given)."""
    monkeypatch.setenv("ARENA_DB_URL", url)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if page is not None:
        at.switch_page(page)
        at.run()
    return at


def texts(at: AppTest) -> str:
    """Everything the page wrote as text, for assertions on messages."""
    parts: list[str] = []
    for kind in ("title", "subheader", "caption", "markdown", "info", "error", "warning", "success", "text", "code"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(f"{m.label} {m.value} {m.delta or ''}" for m in at.metric)
    return "\n".join(parts)


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> list[Any]:
    return list(at.get("plotly_chart"))


# -- the demo store --------------------------------------------------------------------------------------------
def test_leaderboard_leads_with_the_race_and_headlines(demo_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(demo_store_url, monkeypatch)
    no_failure(at)
    assert at.title[0].value == "Leaderboard"
    labels = [m.label for m in at.metric]
    assert labels[:5] == ["Leader", "Best LLM agent", "Best quant agent", "Agents", "Fills"]
    assert at.metric[3].value == "6"
    assert "2 LLM · 4 quant/ML" in str(at.metric[3].delta)
    assert {str(at.metric[k].delta) for k in range(3)} <= DEMO_AGENTS
    assert at.metric[0].value.endswith("%")
    assert len(charts(at)) == 1  # the equity race, above the standings
    boards = [df.value for df in at.dataframe]
    assert len(boards) == 3  # performance, behaviour, reliability
    assert set(boards[0]["agent"]) == DEMO_AGENTS
    assert list(boards[0]["rank"]) == list(range(1, 7))
    assert boards[2]["invalid_output_rate"].notna().sum() == 2  # only the two LLM agents were called
    assert {df.proto.placeholder for df in at.dataframe} == {"\u2013"}  # undefined cells show a dash, not "None"
    caption = texts(at)
    assert "period: whole run" in caption
    assert "UTC" in caption


def test_the_standings_tables_take_their_columns_and_headers_from_the_spec(
    demo_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(demo_store_url, monkeypatch)
    shown = []
    for df, group in zip(at.dataframe, ("performance", "behaviour", "reliability"), strict=True):
        spec = [*ARENA_BOARD.group("identity"), *ARENA_BOARD.group(group)]
        config = json.loads(df.proto.columns)
        names = [c for c in df.value.columns if c != "kind_label"]
        assert names == [c.name for c in spec if c.name != "kind" and c.name in df.value.columns]
        for column in spec:
            key = "kind_label" if column.name == "kind" else column.name
            if key in config:
                assert config[key]["label"].startswith(column.label), (key, config[key]["label"])
                assert config[key].get("help", "").startswith(column.definition)
        shown += names
    assert set(ARENA_BOARD.names) - set(shown) == {"kind", "median_hold_hours"}  # kind as kind_label; not in SQL


def test_the_family_filter_and_a_period_narrow_the_board(demo_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(demo_store_url, monkeypatch)
    at.segmented_control(key="board_family").set_value("LLM").run()
    no_failure(at)
    assert set(at.dataframe[0].value["agent"]) == {"scalper", "roundtrip"}

    at.segmented_control(key="period").set_value("Last 24 h").run()
    no_failure(at)
    assert "period: 2025-03-01 01:00 UTC to last bar" in texts(at)

    at.segmented_control(key="period").set_value("Custom").run()
    no_failure(at)
    days = [d for d in at.date_input if str(d.key).startswith("period_days_")]
    assert len(days) == 1
    assert "period: 2025-03-01 00:00 UTC to 2025-03-02 23:59 UTC" in texts(at)


def test_agent_detail_shows_the_decision_log(demo_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(demo_store_url, monkeypatch, "views/agent.py")
    no_failure(at)
    assert at.title[0].value == "Agent detail"
    at.selectbox(key="agent").select("scalper").run()
    no_failure(at)
    assert [m.label for m in at.metric][:6] == [
        "Account value (USDT)",
        "PnL (USDT)",
        "Max drawdown",
        "Sharpe",
        "Trades",
        "LLM cost",
    ]
    assert len(charts(at)) == 1  # equity and drawdown
    frames = {tuple(df.value.columns): df.value for df in at.dataframe}
    positions = next(f for cols, f in frames.items() if "invalidation" in cols and "mark" in cols)
    assert list(positions["invalidation"]) == ["BTC close below 1000"]  # the exit plan the agent set
    assert positions["stop_loss"].notna().all()
    assert positions["take_profit"].notna().all()

    rounds = at.selectbox(key="round_scalper")
    assert rounds.value == 24  # the newest round first
    rounds.select(1).run()  # round 1: the scripted entry
    no_failure(at)
    code = "\n".join(str(c.value) for c in at.code)
    assert "CURRENT MARKET STATE FOR ALL COINS" in code  # the user prompt
    assert '"signal": "buy_to_enter"' in code  # the raw response exactly as received
    decisions = next(df.value for df in at.dataframe if "review" in df.value.columns)
    assert set(decisions["symbol"]) == {"BTC/USDT", "ETH/USDT"}
    assert "approved" in set(decisions["review"])
    assert "scripted entry" in texts(at)  # the reasoning
    assert {m.label for m in at.metric} >= {"Output", "Latency", "Cost", "Bar close (UTC)"}


def test_a_quant_agent_has_a_log_without_prompts(demo_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(demo_store_url, monkeypatch, "views/agent.py")
    at.selectbox(key="agent").select("sma_cross").run()
    no_failure(at)
    assert any(m.label == "Rank" for m in at.metric)
    output = next(m for m in at.metric if m.label == "Output")
    assert output.value == "rule-based"
    assert not at.code  # no prompt, no raw response to show


def test_risk_page_is_read_only_without_a_token(demo_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(demo_store_url, monkeypatch, "views/risk.py")
    no_failure(at)
    assert at.title[0].value == "Risk"
    body = texts(at)
    assert "Trading is enabled" in body
    assert "read-only" in body
    assert not at.text_input
    assert not at.main.button  # (the sidebar has only its "Reload data now")
    assert [s.value for s in at.subheader][:5] == [
        "Kill switch",
        "Circuit breakers",
        "Exposure",
        "Value at risk",
        "Correlation of agent returns",
    ]
    assert len(charts(at)) == 3  # exposure, VaR, correlation
    breakers = next(df.value for df in at.dataframe if "state_label" in df.value.columns)
    assert set(breakers["scope"]) == DEMO_AGENTS | {"portfolio (all agents)"}
    var = next(df.value for df in at.dataframe if "var_95_historical" in df.value.columns)
    assert {"var_99_parametric", "cvar_99_historical", "observations"} <= set(var.columns)
    assert var.set_index("agent").loc["buy_and_hold", "var_95_historical"] > 0  # shown in percent
    at.segmented_control(key="var_level").set_value("99%").run()
    no_failure(at)


def test_research_page_without_and_with_an_mlflow_store(
    demo_store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    at = open_app(demo_store_url, monkeypatch, "views/research.py")
    no_failure(at)
    assert "No MLflow store yet" in texts(at)
    assert not (tmp_path / "no-mlflow").exists()  # reading never creates a store

    try:
        store: Store = build_store(tmp_path / "mlflow", monkeypatch)
        st.cache_data.clear()
        at = open_app(demo_store_url, monkeypatch, "views/research.py")
        no_failure(at)
        metrics = {m.label: m for m in at.metric}
        assert metrics["Experiments"].value == "3"  # Default, features, xgb-eth
        assert metrics["Gate reports"].value == "3"
        assert "2 passed" in str(metrics["Gate reports"].delta)
        runs = next(df.value for df in at.dataframe if "run_name" in df.value.columns and "status" in df.value.columns)
        assert runs["run_id"].iloc[0] == store.good_run
        models = next(df.value for df in at.dataframe if "aliases" in df.value.columns)
        assert list(models.set_index("version").loc[2, "aliases"]) == ["candidate", "paper"]
        checks = next(df.value for df in at.dataframe if "threshold" in df.value.columns)
        assert "min_oos_trades" in set(checks["name"])
    finally:
        reset_mlflow()


def test_operations_page(demo_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(demo_store_url, monkeypatch, "views/operations.py")
    no_failure(at)
    body = texts(at)
    assert "Not connected: PREFECT_API_URL is not set" in body
    metrics = {m.label: m for m in at.metric}
    assert metrics["Round"].value == "24"
    assert "ago" in metrics["Last round committed"].value
    assert metrics["Bar decided on"].value == "Mar 02 01:00"
    fresh = next(df.value for df in at.dataframe if "last_close" in df.value.columns)
    assert {"BTC/USDT", "ETH/USDT"} <= set(fresh["symbol"])
    assert "No candle cache" in body


# -- an empty store and an unreadable one ----------------------------------------------------------------------
@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_guides_a_new_install(page: str, empty_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(empty_store_url, monkeypatch, page)
    no_failure(at)
    assert at.title[0].value == PAGES[page]
    body = texts(at)
    if page in RUN_PAGES or page == "views/operations.py":
        assert "No runs yet: run `make demo`" in body
    assert not at.error


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_explains_an_unreadable_store(
    page: str, unreadable_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app(unreadable_store_url, monkeypatch, page)
    no_failure(at)
    body = texts(at)
    assert "Traceback" not in body
    if page in RUN_PAGES or page == "views/operations.py":
        assert "The arena store cannot be read." in body
        assert "ARENA_DB_URL" in body  # what to do about it
    assert any("cannot be read" in str(e.value) for e in at.sidebar.error)


# -- the kill switch ---------------------------------------------------------------------------------------------
def _form_button(at: AppTest, label: str) -> Any:
    return next(b for b in at.button if b.label == label)


def test_the_kill_switch_needs_the_token(empty_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    at = open_app(empty_store_url, monkeypatch, "views/risk.py")
    no_failure(at)
    token_box, reason_box = at.text_input[0], at.text_input[1]

    token_box.input("wrong-token")
    reason_box.input("exchange outage")
    _form_button(at, "Halt all trading").click().run()
    no_failure(at)
    assert any("not correct" in str(e.value) for e in at.error)
    assert ArenaStore(empty_store_url).halt_state() is None

    at.text_input[0].input(TOKEN)
    at.text_input[1].input("exchange outage")
    _form_button(at, "Halt all trading").click().run()
    no_failure(at)
    state = ArenaStore(empty_store_url).halt_state()
    assert state is not None
    assert state.halted
    assert state.by == ACTOR
    assert state.reason == "exchange outage"
    assert "Trading is halted." in texts(at)
    assert TOKEN not in texts(at)
    assert all(w.value != TOKEN for w in at.text_input)  # the form was cleared on submit

    at.text_input[0].input(TOKEN)
    _form_button(at, "Resume trading").click().run()
    no_failure(at)
    state = ArenaStore(empty_store_url).halt_state()
    assert state is not None
    assert not state.halted
    assert state.by == ACTOR
    assert "Trading is enabled." in texts(at)
