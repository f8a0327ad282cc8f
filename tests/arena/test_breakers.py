"""Circuit breakers: the pure state machine on hand-built equity paths, then real arena runs on the loopback LLM.

The arena scenario: the scripted agent "loser" goes long 13 ETH at 5x on the first round of 2025-03-01, while ETH
falls from 2270 (04:00) to 2152 (14:00) in the bundled real sample. Its equity peaks at 10,688.67 at the 05:00
close and is 9,570.31 at the 12:00 close (round 11): a 10.5% drawdown, so the 10% agent-drawdown breaker trips
there. The server's answers are TEST FIXTURES scripted below, never a language model's output.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arena_lib.agents.base import AccountView
from arena_lib.arena import schema as t
from arena_lib.arena.breakers import breaker_frame, change_row, reset_breakers
from arena_lib.arena.config import ArenaConfig, BreakerSettings, load_arena_config
from arena_lib.arena.session import resume_run, start_run
from arena_lib.arena.store import ArenaStore
from arena_lib.cli.main import app
from arena_lib.core.config import RiskLimits
from arena_lib.core.types import Action, Decision, Position
from arena_lib.engine.breakers import (
    ACTIVE,
    AGENT_DRAWDOWN,
    DAILY_LOSS,
    HALTED,
    PORTFOLIO,
    PORTFOLIO_DRAWDOWN,
    REDUCING,
    BreakerBook,
    BreakerChange,
    BreakerRisk,
)
from arena_lib.engine.risk import RiskEngine
from tests.arena.conftest import ENV, Behaviour, Desk, Request, answer, arena_config, coin, llm_config
from tests.servers.llm import LLMServer, Reply

CASH = 10_000.0
H = 3_600 * 1_000_000_000
DAY0 = pd.Timestamp("2025-03-01", tz="UTC").value
OPS_AT = pd.Timestamp("2026-01-05 09:30", tz="UTC").value  # the operator's wall clock
TRIP_ROUND = 11  # see the module docstring
DRAWDOWN_ONLY = BreakerSettings(agent_drawdown=0.10, portfolio_drawdown=None, daily_loss=None)


# -- the state machine ---------------------------------------------------------------------------------------------
def _play(book: BreakerBook, path: list[list[float]], first_hour: int = 1) -> list[list[BreakerChange]]:
    """Feed hourly closes (one list of equities per bar, closing at 01:00, 02:00, ...) and collect the changes."""
    return [book.observe(k, DAY0 + (first_hour + k) * H, eqs) for k, eqs in enumerate(path)]


def test_agent_drawdown_trips_reducing_and_stays_until_reset() -> None:
    book = BreakerBook(DRAWDOWN_ONLY, ["a", "b"], CASH)
    changes = _play(book, [[10_500, 10_000], [9_500, 10_000], [9_440, 10_000], [11_000, 10_000]])
    assert changes[:2] == [[], []]  # 9,500 is 9.5% below the 10,500 peak
    (trip,) = changes[2]
    assert trip.agent == "a"
    assert trip.status.state == REDUCING
    assert trip.status.breaker == AGENT_DRAWDOWN
    assert trip.status.round_no == 2
    assert trip.status.reason == "agent drawdown 10.1% >= 10% (equity 9,440.00 from peak 10,500.00)"
    assert set(trip.trips) == {AGENT_DRAWDOWN}
    assert changes[3] == []  # sticky: a new high does not lift it
    assert book.status("a").state == REDUCING
    assert book.gate("b") is None
    gate = book.gate("a")
    assert gate is not None
    assert gate.verdict() == (
        "circuit breaker REDUCING: agent drawdown 10.1% >= 10% (equity 9,440.00 from peak 10,500.00) "
        "since 2025-03-01 03:00 UTC - closes only"
    )


def test_portfolio_drawdown_halts_every_account() -> None:
    settings = BreakerSettings(agent_drawdown=None, portfolio_drawdown=0.15, daily_loss=None)
    book = BreakerBook(settings, ["a", "b"], CASH)
    changes = _play(book, [[10_000, 10_000], [8_000, 9_100], [8_000, 8_900]])
    assert changes[:2] == [[], []]  # 17,100 is 14.5% below 20,000
    by_scope = {c.agent: c.status for c in changes[2]}
    assert set(by_scope) == {PORTFOLIO, "a", "b"}
    assert {s.state for s in by_scope.values()} == {HALTED}
    assert {s.breaker for s in by_scope.values()} == {PORTFOLIO_DRAWDOWN}
    assert by_scope["*"].reason == "portfolio drawdown 15.5% >= 15% (all accounts 16,900.00 from peak 20,000.00)"
    gate = book.gate("b")  # b lost only 11%, but the portfolio breaker stops it too
    assert gate is not None
    assert gate.verdict().endswith("- no new orders")


def test_the_most_severe_trip_decides_an_account_state() -> None:
    settings = BreakerSettings(agent_drawdown=0.10, portfolio_drawdown=0.15, daily_loss=None)
    book = BreakerBook(settings, ["a", "b"], CASH)
    _play(book, [[8_900, 10_000], [8_900, 8_000]])
    assert book.status("a").breaker == PORTFOLIO_DRAWDOWN  # halted outranks a's own earlier reducing
    assert book.status("a").state == HALTED
    book.reset(PORTFOLIO, round_no=1, at_ns=OPS_AT, by="ops")
    assert book.status("a").state == REDUCING  # a's own trip is still there
    assert book.status("b").state == REDUCING  # b's drawdown tripped on the same bar
    assert book.status(PORTFOLIO).state == ACTIVE


def test_daily_loss_halts_until_the_next_utc_day() -> None:
    settings = BreakerSettings(agent_drawdown=None, portfolio_drawdown=None, daily_loss=0.05)
    book = BreakerBook(settings, ["a"], CASH)

    def close(hour: int, eq: float) -> list[BreakerChange]:
        return book.observe(hour, DAY0 + hour * H, [eq])

    assert close(22, 9_600) == []  # 4% below the 10,000 the day started with
    (trip,) = close(23, 9_450)
    assert trip.status.state == HALTED
    assert trip.status.breaker == DAILY_LOSS
    assert trip.status.reason == "daily loss 5.5% >= 5% (equity 9,450.00 from 10,000.00 at 00:00)"
    gate = book.gate("a")
    assert gate is not None
    assert gate.verdict().endswith("no new orders until 2025-03-02 00:00 UTC")
    assert close(24, 9_000) == []  # the 00:00 close still belongs to 2025-03-01
    assert book.gate("a") is not None
    (cleared,) = close(25, 8_600)  # the first close of the new day: active again
    assert cleared.status.state == ACTIVE
    assert cleared.trips == {}
    assert "new UTC day" in cleared.status.reason
    assert book.gate("a") is None
    # The new day starts from the 00:00 equity (9,000): 8,600 was 4.4% down, 8,100 is 10% down and trips again.
    (again,) = close(26, 8_100)
    assert again.status.reason == "daily loss 10% >= 5% (equity 8,100.00 from 9,000.00 at 00:00)"


def test_disabled_breakers_never_trip() -> None:
    book = BreakerBook(BreakerSettings.off(), ["a", "b"], CASH)
    changes = _play(book, [[5_000, 4_000], [100.0, 50.0]], first_hour=23)
    assert changes == [[], []]
    assert not book.tripped
    assert book.gate("a") is None


def test_reset_rearms_from_the_current_equity() -> None:
    book = BreakerBook(DRAWDOWN_ONLY, ["a"], CASH)
    _play(book, [[8_900]])
    assert book.status("a").state == REDUCING
    (change,) = book.reset("a", round_no=0, at_ns=OPS_AT, by="ops", reason="reviewed")
    assert change.by == "ops"
    assert change.status.state == ACTIVE
    assert change.status.reason == "reset by ops: reviewed"
    assert (change.anchor_round, change.anchor_equity) == (0, 8_900)
    # The peak restarts at 8,900: 8,100 is 9.0% below it (no trip), 8,000 is 10.1% below (trips again).
    assert book.observe(1, DAY0 + 2 * H, [8_100]) == []
    (trip,) = book.observe(2, DAY0 + 3 * H, [8_000])
    assert trip.status.reason == "agent drawdown 10.1% >= 10% (equity 8,000.00 from peak 8,900.00)"
    with pytest.raises(ValueError, match="no account 'zed'"):
        book.reset("zed", round_no=2, at_ns=OPS_AT, by="ops")


def test_a_restored_book_continues_exactly_like_the_original() -> None:
    """Trips from the latest rows, peaks and the day's start from the equity history: the same next changes."""
    settings = BreakerSettings(agent_drawdown=0.10, portfolio_drawdown=0.15, daily_loss=0.05)
    agents = ["a", "b"]
    path = [[10_400, 10_000], [9_300, 10_200], [9_800, 10_100], [9_200, 9_900], [9_700, 10_050], [9_500, 10_060]]
    times = [DAY0 + (20 + k) * H for k in range(len(path))]  # 20:00 .. 01:00 of the next day
    live = BreakerBook(settings, agents, CASH)
    rows: list[t.BreakerRow] = []
    for k in range(4):
        rows += [change_row(c, "r") for c in live.observe(k, times[k], path[k])]
    rows += [change_row(c, "r") for c in live.reset("b", round_no=3, at_ns=OPS_AT, by="ops")]
    latest = {r.agent: r for r in rows}.values()
    equity = pd.DataFrame(
        [(a, k, times[k], path[k][j]) for k in range(4) for j, a in enumerate(agents)],
        columns=["agent", "round_no", "ts", "equity"],
    )
    restored = BreakerBook(settings, agents, CASH)
    restored.restore(latest, equity)
    for scope in (*agents, PORTFOLIO):
        assert restored.status(scope) == live.status(scope)
    for a in agents:
        mine, theirs = restored.watch[a], live.watch[a]
        assert (mine.peak, mine.last, mine.day, mine.day_start) == (
            theirs.peak,
            theirs.last,
            theirs.day,
            theirs.day_start,
        )
    assert restored.portfolio.peak == live.portfolio.peak
    for k in (4, 5):
        assert restored.observe(k, times[k], path[k]) == live.observe(k, times[k], path[k])


def test_breaker_risk_rejects_entries_and_reviews_closes() -> None:
    book = BreakerBook(DRAWDOWN_ONLY, ["a"], CASH)
    _play(book, [[8_900]])
    gate = book.gate("a")
    assert gate is not None
    risk = BreakerRisk(RiskEngine(RiskLimits(), 0.0005), gate)
    pos = Position(
        "ETH/USDT",
        quantity=1.0,
        entry_price=2_000.0,
        leverage=2.0,
        margin=1_000.0,
        opened_at=0,
        liquidation_price=1_000.0,
    )
    view = AccountView(8_900.0, 8_900.0, CASH, {"ETH/USDT": pos})
    entry = risk.review(Decision("BTC/USDT", Action.ENTER_LONG, 0.1), view, 80_000.0)
    assert not entry.approved
    assert entry.reasons == (gate.verdict(),)
    assert risk.review(Decision("ETH/USDT", Action.CLOSE, 0.0), view, 2_100.0).approved
    nothing = risk.review(Decision("BTC/USDT", Action.CLOSE, 0.0), view, 80_000.0)
    assert nothing.reasons == ("BTC/USDT: no open position to close",)  # closes still get the normal review


def test_bad_scopes_are_refused() -> None:
    with pytest.raises(ValueError, match="unique agent names"):
        BreakerBook(DRAWDOWN_ONLY, ["a", "a"], CASH)
    with pytest.raises(ValueError, match="unique agent names"):
        BreakerBook(DRAWDOWN_ONLY, ["*"], CASH)
    with pytest.raises(ValueError, match="one per agent"):
        BreakerBook(DRAWDOWN_ONLY, ["a"], CASH).observe(0, DAY0, [1.0, 2.0])


# -- configuration -------------------------------------------------------------------------------------------------
def test_breaker_settings_in_the_arena_yaml(tmp_path: Path) -> None:
    import yaml

    base = {"symbols": ["BTC/USDT"], "timeframe": "1h", "agents": [{"agent": "noop"}]}
    path = tmp_path / "arena.yaml"
    path.write_text(yaml.safe_dump(base))
    assert load_arena_config(path).breakers == BreakerSettings()  # defaults on: 10% / 15% / 5%
    path.write_text(yaml.safe_dump({**base, "breakers": {"daily_loss": None, "agent_drawdown_action": "halted"}}))
    cfg = load_arena_config(path)
    assert cfg.breakers.daily_loss is None
    assert cfg.breakers.agent_drawdown == 0.10
    assert cfg.breakers.agent_drawdown_action == HALTED
    path.write_text(yaml.safe_dump({**base, "breakers": "off"}).replace("'off'", "off"))
    assert load_arena_config(path).breakers == BreakerSettings.off()
    path.write_text(yaml.safe_dump({**base, "breakers": {"agent_drawdown": 1.5}}))
    with pytest.raises(ValueError, match="agent_drawdown"):
        load_arena_config(path)
    # The stored config round-trips, and runs stored before breakers existed get the defaults.
    assert ArenaConfig.from_dict(cfg.to_dict()) == cfg
    old = cfg.to_dict()
    del old["breakers"]
    assert ArenaConfig.from_dict(old).breakers == BreakerSettings()


# -- arena runs ----------------------------------------------------------------------------------------------------
def loser(close_at: int = 14, stop: float | None = None) -> Behaviour:
    """Long 13 ETH at 5x on the first round; tries to add to it (an entry) while it is open, closes it on
    invocation `close_at` while entering BTC, then keeps trying to enter BTC."""
    btc_entry = coin("BTC", "buy_to_enter", quantity=0.01, leverage=1.0)
    eth_entry = coin("ETH", "buy_to_enter", quantity=13.0, leverage=5.0, stop_loss=stop)

    def respond(req: Request) -> Reply:
        n = req.invocation
        if req.holds("ETH"):
            decisions = (coin("BTC"), eth_entry) if n < close_at else (btc_entry, coin("ETH", "close"))
        elif n == 1:
            decisions = (coin("BTC"), eth_entry)
        else:
            decisions = (btc_entry, coin("ETH"))
        return Reply(data=answer(*decisions))

    return respond


def _config(server: LLMServer, settings: BreakerSettings = DRAWDOWN_ONLY, end: str = "2025-03-02") -> ArenaConfig:
    return replace(arena_config(llm_config(server, "loser"), end=end), breakers=settings)


def _decisions(store: ArenaStore, run_id: str) -> pd.DataFrame:
    d = store.decisions_frame(run_id, "loser")
    return d[d["source"] != "invalidation"].set_index(["round_no", "symbol"])


def test_a_losing_agent_trips_reducing_entries_are_rejected_and_closes_pass(
    server: LLMServer, desk: Desk, store: ArenaStore, caplog: pytest.LogCaptureFixture
) -> None:
    desk.routes["loser"] = loser(close_at=14)
    with caplog.at_level(logging.WARNING, logger="arena_lib.engine.breakers"):
        report = start_run(_config(server), store, rounds=17, env=ENV)
    assert any("circuit breaker tripped: account 'loser' REDUCING" in r.getMessage() for r in caplog.records)

    frame = breaker_frame(store, report.run_id).set_index("agent")
    assert list(frame.columns) == ["state", "breaker", "reason", "since", "round_no"]
    assert frame.loc["loser", "state"] == REDUCING
    assert frame.loc["loser", "breaker"] == AGENT_DRAWDOWN
    assert frame.loc["loser", "round_no"] == TRIP_ROUND
    assert frame.loc["loser", "since"] == pd.Timestamp("2025-03-01 12:00", tz="UTC")  # round 11's close
    assert frame.loc["loser", "reason"].startswith("agent drawdown 10.5% >= 10% (equity 9,570.31")
    assert frame.loc["sma_cross", "state"] == ACTIVE
    assert pd.isna(frame.loc["sma_cross", "since"])
    assert frame.loc[PORTFOLIO, "state"] == ACTIVE

    dec = _decisions(store, report.run_id)
    verdict = (
        "circuit breaker REDUCING: agent drawdown 10.5% >= 10% (equity 9,570.31 from peak 10,688.67) "
        "since 2025-03-01 12:00 UTC - closes only"
    )
    # Before the trip, the pyramiding entry was the RiskEngine's ordinary rejection; from the next decision on,
    # every entry is the breaker's, the close on round 13 (invocation 14) passes and its order fills.
    assert "no pyramiding" in dec.loc[(TRIP_ROUND, "ETH/USDT"), "verdict"]
    assert dec.loc[(TRIP_ROUND + 1, "ETH/USDT"), "verdict"] == verdict
    close = dec.loc[(13, "ETH/USDT")]
    assert (close["action"], bool(close["approved"])) == ("close", True)
    entries = dec[dec["action"] == "enter_long"]
    after = entries[entries.index.get_level_values("round_no") > TRIP_ROUND]
    assert len(after) == 5  # ETH on 12, BTC on 13 .. 16
    assert (after["approved"] == False).all()  # noqa: E712 - a nullable column
    assert (after["verdict"] == verdict).all()
    fills = store.fills_frame(report.run_id, "loser")
    assert fills[["round_no", "symbol", "kind"]].values.tolist() == [[1, "ETH/USDT", "entry"], [14, "ETH/USDT", "exit"]]
    # One breaker row: the trip (written with round 11, in its transaction); no row per bar.
    rows = store.frame(t.BreakerRow, report.run_id)
    assert rows[["agent", "state", "round_no", "by"]].values.tolist() == [["loser", REDUCING, TRIP_ROUND, "engine"]]


def test_a_halted_agent_is_not_asked_and_engine_exits_still_settle(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    desk.routes["loser"] = loser(close_at=99, stop=2_160.0)  # the stop is hit in the 13:00 bar (low 2142.73)
    settings = DRAWDOWN_ONLY.model_copy(update={"agent_drawdown_action": HALTED})
    report = start_run(_config(server, settings), store, rounds=16, env=ENV)

    assert server.calls(model="loser") == TRIP_ROUND + 1  # rounds 0 .. 11 asked, then no more requests
    calls = store.llm_calls_frame(report.run_id, "loser")
    assert calls["round_no"].max() == TRIP_ROUND
    dec = _decisions(store, report.run_id)
    benched = dec[dec.index.get_level_values("round_no") > TRIP_ROUND]
    assert len(benched) == 2 * 4  # both coins, rounds 12 .. 15
    assert (benched["source"] == "breaker").all()
    assert (benched["action"] == "hold").all()
    assert benched["reason"].str.startswith("circuit breaker HALTED: agent drawdown 10.5% >= 10%").all()
    assert benched["reason"].str.endswith("- no new orders").all()
    fills = store.fills_frame(report.run_id, "loser")
    assert fills[["round_no", "kind"]].values.tolist() == [[1, "entry"], [13, "stop_loss"]]
    assert breaker_frame(store, report.run_id).set_index("agent").loc["loser", "state"] == HALTED


def test_daily_loss_halts_over_a_reducing_account_and_clears_the_next_day(
    server: LLMServer, desk: Desk, store: ArenaStore
) -> None:
    """Defaults on: REDUCING at round 11, the 5% daily loss HALTS it at round 13 (8.4% below 10,000), the first
    close of 2025-03-02 (round 24) lifts the daily halt, and the sticky drawdown leaves it REDUCING."""
    desk.routes["loser"] = loser(close_at=99)
    config = _config(server, BreakerSettings(portfolio_drawdown=None), end="2025-03-02T03:00")
    report = start_run(config, store, env=ENV)

    rows = store.frame(t.BreakerRow, report.run_id, order=("id",))
    assert rows[["round_no", "state", "breaker"]].values.tolist() == [
        [TRIP_ROUND, REDUCING, AGENT_DRAWDOWN],
        [13, HALTED, DAILY_LOSS],
        [TRIP_ROUND, REDUCING, AGENT_DRAWDOWN],  # round 24 (01:00 close): the daily halt is lifted
    ]
    assert sorted(rows.iloc[-1]["trips"]) == [AGENT_DRAWDOWN]
    calls = store.llm_calls_frame(report.run_id, "loser")["round_no"].tolist()
    assert calls == [*range(14), 25, 26, 27]  # halted from round 14 to 24, asked again from round 25
    dec = _decisions(store, report.run_id)
    assert dec.loc[(25, "ETH/USDT"), "verdict"].startswith("circuit breaker REDUCING")


def test_a_stopped_run_resumes_reducing(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    desk.routes["loser"] = loser(close_at=14)
    first = start_run(_config(server), store, rounds=14, env=ENV)  # rounds 0 .. 13: tripped on 11
    assert first.status == "stopped"
    before = store.count(t.BreakerRow, first.run_id)

    again = resume_run(first.run_id, store, rounds=3, env=ENV)  # a fresh runner: its state comes from the store

    assert again.status == "stopped"
    assert breaker_frame(store, first.run_id).set_index("agent").loc["loser", "state"] == REDUCING
    assert store.count(t.BreakerRow, first.run_id) == before  # restored, not re-tripped: nothing new to write
    dec = _decisions(store, first.run_id)
    resumed = dec[(dec.index.get_level_values("round_no") >= 14) & (dec["action"] == "enter_long")]
    assert len(resumed) == 3
    assert resumed["verdict"].str.startswith("circuit breaker REDUCING: agent drawdown 10.5%").all()


def test_an_operator_reset_rearms_a_stopped_run(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    desk.routes["loser"] = loser(close_at=14)
    first = start_run(_config(server), store, rounds=14, env=ENV)

    frame = reset_breakers(store, first.run_id, "loser", by="ops", reason="reviewed", at_ns=OPS_AT)

    row = frame.set_index("agent").loc["loser"]
    assert (row["state"], row["breaker"], row["reason"]) == (ACTIVE, "", "reset by ops: reviewed")
    assert row["since"] == pd.Timestamp(OPS_AT, tz="UTC")
    resume_run(first.run_id, store, rounds=2, env=ENV)
    dec = _decisions(store, first.run_id)
    btc = dec.loc[(14, "BTC/USDT")]  # flat again after the close filled: the entry is approved
    assert (btc["action"], bool(btc["approved"])) == ("enter_long", True)
    assert breaker_frame(store, first.run_id).set_index("agent").loc["loser", "state"] == ACTIVE
    with pytest.raises(ValueError, match="no account 'nobody'"):
        reset_breakers(store, first.run_id, "nobody", by="ops", at_ns=OPS_AT)
    with pytest.raises(KeyError, match="no run"):
        reset_breakers(store, "missing", by="ops", at_ns=OPS_AT)


def test_a_running_job_picks_up_an_operator_reset(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    desk.routes["loser"] = loser(close_at=14)

    def operator(done: int, total: int) -> None:
        if done == 14:  # another process resets while the job runs (after round 13 committed)
            other = ArenaStore(store.url)
            run_id = other.latest_run_id()
            assert run_id is not None
            reset_breakers(other, run_id, by="ops", at_ns=OPS_AT)
            other.engine.dispose()

    report = start_run(_config(server), store, rounds=16, progress=operator, env=ENV)

    dec = _decisions(store, report.run_id)
    assert bool(dec.loc[(14, "BTC/USDT"), "approved"])  # the very next decision saw the reset
    rows = store.frame(t.BreakerRow, report.run_id, order=("id",))
    loser_rows = rows[rows["agent"] == "loser"]
    assert loser_rows["by"].tolist() == ["engine", "ops", "engine"]  # the job wrote the adopted state again
    assert loser_rows.iloc[-1]["state"] == ACTIVE
    assert loser_rows.iloc[-1]["reason"] == "reset by ops"
    assert loser_rows.iloc[-1]["anchor_round"] == 13


def test_breakers_show_and_reset_commands(server: LLMServer, desk: Desk, tmp_path: Path) -> None:
    desk.routes["loser"] = loser(close_at=14)
    db = f"sqlite:///{tmp_path}/cli.db"
    store = ArenaStore(db)
    run_id = start_run(_config(server), store, rounds=13, env=ENV).run_id
    cli = CliRunner()

    res = cli.invoke(app, ["breakers", "show", "--db", db])  # the latest run by default
    assert res.exit_code == 0, res.output
    assert "reducing" in res.output
    assert "agent_drawdown" in res.output
    res = cli.invoke(app, ["breakers", "show", run_id, "--json", "--db", db])
    assert res.exit_code == 0, res.output
    shown = {r["agent"]: r for r in map(json.loads, res.stdout.strip().splitlines())}
    assert set(shown) == {"loser", "sma_cross", PORTFOLIO}
    assert shown["loser"]["state"] == REDUCING
    assert shown["loser"]["since"] == "2025-03-01T12:00:00+00:00"
    assert shown["loser"]["round_no"] == TRIP_ROUND
    assert shown["sma_cross"]["since"] is None

    res = cli.invoke(app, ["breakers", "reset", run_id, "--agent", "nobody", "--db", db])
    assert res.exit_code == 2
    assert "no account 'nobody'" in res.output
    res = cli.invoke(app, ["breakers", "reset", run_id, "--reason", "drill over", "--db", db])
    assert res.exit_code == 0, res.output
    assert "breakers reset on run" in res.output
    states = breaker_frame(store, run_id).set_index("agent")["state"]
    assert (states == ACTIVE).all()
    assert breaker_frame(store, run_id).set_index("agent").loc["loser", "reason"].endswith(": drill over")
    res = cli.invoke(app, ["breakers", "show", "no-such-run", "--db", db])
    assert res.exit_code == 2
    assert "no run" in res.output
    store.engine.dispose()


def test_breaker_frame_of_an_untripped_run_lists_every_account(store: ArenaStore) -> None:
    config = arena_config(end="2025-03-01T03:00")
    report = start_run(config, store)
    frame = breaker_frame(store, report.run_id)
    assert frame["agent"].tolist() == ["sma_cross", PORTFOLIO]
    assert (frame["state"] == ACTIVE).all()
    assert frame["since"].isna().all()
    assert str(frame["since"].dtype) == "datetime64[ns, UTC]"
    assert frame["round_no"].isna().all()
    assert not math.isnan(store.equity_at(report.run_id, 3)["sma_cross"])
    with pytest.raises(KeyError, match="no run"):
        breaker_frame(store, "missing")


def test_arena_run_reports_a_tripped_breaker(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "arena.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "symbols": ["BTC/USDT"],
                "timeframe": "1h",
                "start": "2025-03-01",
                "end": "2025-03-01T06:00",
                "breakers": {"agent_drawdown": 0.001, "daily_loss": None},  # a hair-trigger, to trip in hours
                "agents": [{"agent": "buy_and_hold"}, {"agent": "noop", "label": "cash"}],
            }
        )
    )
    db = ["--db", f"sqlite:///{tmp_path}/arena.db", "--cache-db", f"sqlite:///{tmp_path}/c.db"]
    res = CliRunner().invoke(app, ["run", "--config", str(cfg), "--json", *db])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == "completed"
    assert list(out["breakers"]) == ["buy_and_hold"]
    assert out["breakers"]["buy_and_hold"].startswith("reducing: agent drawdown")
