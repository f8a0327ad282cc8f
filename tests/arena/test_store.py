"""The arena ledger after real runs: ids, cash reconciliation, equity, idempotent commits, cutoff flags, standings.

One full-window run (`traded`) exercises every kind of fill the engine makes: entries, agent closes, take-profits,
stop-losses and liquidations, plus a quant baseline. The ledger must then reconcile on its own, from its rows
alone: each account's cash from its fills, each open position from the net of its fills.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from arena_lib.analytics.columns import ARENA_BOARD
from arena_lib.arena import schema as t
from arena_lib.arena.session import RunReport, start_run
from arena_lib.arena.standings import arena_leaderboard, export_leaderboard, period_results, results_from_store
from arena_lib.arena.store import ArenaStore, RoundWrite
from arena_lib.core.config import RiskLimits
from tests.arena.conftest import (
    ENV,
    KEY,
    WINDOW_BARS,
    Desk,
    Request,
    answer,
    arena_config,
    buyer,
    coin,
    holder,
    llm_config,
)
from tests.servers.llm import LLMServer, Reply, Script

CASH0 = 10_000.0


def _round_tripper(req: Request) -> Reply:
    """Buy BTC when flat, close it on the next round: every exit is the agent's own (fill kind `exit`)."""
    if req.holds("BTC"):
        return Reply(data=answer(coin("BTC", "close_position"), coin("ETH")))
    p = req.price("BTC")
    return Reply(data=answer(coin("BTC", "buy_to_enter", 0.02, 2, round(p * 1.05, 2), round(p * 0.95, 2)), coin("ETH")))


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ArenaStore, RunReport]]:
    """A full-window run whose fills include every kind: entry, exit, take_profit, stop_loss, liquidation.

    Module-scoped: the tests below only read it (the commit test proves that it writes nothing).
    """
    desk = Desk()
    desk.routes["scalper"] = buyer(target_pct=0.4, stop_pct=0.4)
    # A 100x short with no stop: liquidated when BTC rises 0.5%, as it does on the first bar it holds.
    desk.routes["gambler"] = buyer(entry="sell_to_enter", quantity=0.05, leverage=100, target_pct=None, stop_pct=None)
    desk.routes["roundtrip"] = _round_tripper
    store = ArenaStore(f"sqlite:///{tmp_path_factory.mktemp('traded')}/arena.db")
    with LLMServer(Script(desk), api_key=KEY) as server:
        config = arena_config(
            *(llm_config(server, n) for n in ("scalper", "gambler", "roundtrip")),
            risk=RiskLimits(max_leverage=100, allow_reversal=False),
        )
        report = start_run(config, store, env=ENV)
        assert server.errors == []
    assert report.status == "completed"
    assert report.rounds == WINDOW_BARS
    yield store, report
    store.engine.dispose()


def test_order_ids_are_deterministic(traded: tuple[ArenaStore, RunReport]) -> None:
    store, report = traded
    run_id = report.run_id
    orders = store.frame(t.OrderRow, run_id)
    ts_of_round = store.rounds_frame(run_id).set_index("round_no")["ts"]
    assert len(orders) > 0
    for o in orders.itertuples():
        assert o.created_at == ts_of_round[o.round_no]
        assert o.order_id == f"{run_id}/{o.agent}/{o.created_at}/{o.symbol}"
    fills = store.fills_frame(run_id)
    by_agent = fills[fills["kind"].isin(["entry", "exit"])]
    assert set(by_agent["order_id"]) <= set(orders["order_id"])  # every order-made fill names its order
    engine = fills[~fills["kind"].isin(["entry", "exit"])]
    for f in engine.itertuples():  # stops, targets, liquidations: run/agent/bar/symbol/kind
        assert f.order_id == f"{run_id}/{f.agent}/{f.ts}/{f.symbol}/{f.kind}"
    assert fills["fill_id"].is_unique


def test_cash_reconciles_with_the_fills_for_every_account(traded: tuple[ArenaStore, RunReport]) -> None:
    store, report = traded
    run_id = report.run_id
    fills = store.fills_frame(run_id)
    assert {"entry", "exit", "take_profit", "stop_loss", "liquidation"} <= set(fills["kind"])
    liq = fills[fills["kind"] == "liquidation"]
    assert (liq["realized_pnl"] == -liq["margin"]).all()
    assert (liq["fee"] == 0).all()
    accounts = store.load_accounts(run_id)
    assert set(accounts) == {"scalper", "gambler", "roundtrip", "sma_cross"}
    for agent, acc in accounts.items():
        f = fills[fills["agent"] == agent]
        entries, exits = f[f["kind"] == "entry"], f[f["kind"] != "entry"]
        expected = (
            CASH0
            - (entries["margin"] + entries["fee"]).sum()
            + (exits["margin"] + exits["realized_pnl"] - exits["fee"]).sum()
        )
        assert acc.cash == pytest.approx(expected, rel=1e-12, abs=1e-8), agent
        assert acc.fees_paid == pytest.approx(f["fee"].sum(), rel=1e-12, abs=1e-12), agent
        assert acc.realized_pnl == pytest.approx(exits["realized_pnl"].sum(), rel=1e-12, abs=1e-9), agent
        # The last equity row holds the same cash.
        last = store.equity_frame(run_id).query("agent == @agent").iloc[-1]
        assert last["cash"] == acc.cash


def test_open_positions_are_the_net_of_the_fills(traded: tuple[ArenaStore, RunReport]) -> None:
    store, report = traded
    run_id = report.run_id
    fills = store.fills_frame(run_id)
    accounts = store.load_accounts(run_id)
    positions = store.frame(t.PositionRow, run_id)
    open_somewhere = 0
    for agent, acc in accounts.items():
        net: dict[str, pd.Series] = {}
        for _, f in fills[fills["agent"] == agent].iterrows():  # in the account's own order (seq)
            if f["kind"] == "entry":
                assert f["symbol"] not in net, "an entry on a coin that is already open"
                net[f["symbol"]] = f
            else:
                assert net.pop(f["symbol"])["quantity"] == f["quantity"]  # exits close the whole position
        assert set(acc.positions) == set(net), agent
        rows = positions[positions["agent"] == agent].set_index("symbol")
        assert set(rows.index) == set(net)
        for sym, entry in net.items():
            open_somewhere += 1
            pos = acc.positions[sym]
            sign = 1 if entry["side"] == "buy" else -1
            assert pos.quantity == sign * entry["quantity"]
            assert pos.entry_price == entry["price"]
            assert pos.leverage == entry["leverage"]
            assert pos.margin + pos.funding_paid == pytest.approx(entry["margin"])  # funding is paid from margin
            assert rows.loc[sym, "quantity"] == pos.quantity
    assert open_somewhere > 0  # the check above ran on real positions


def test_equity_is_recorded_for_every_round_and_agent(traded: tuple[ArenaStore, RunReport]) -> None:
    store, report = traded
    eq = store.equity_frame(report.run_id)
    rounds = store.rounds_frame(report.run_id)
    assert rounds["round_no"].tolist() == list(range(WINDOW_BARS))
    for _agent, g in eq.groupby("agent"):
        assert g["round_no"].tolist() == list(range(WINDOW_BARS))
        assert g["ts"].tolist() == rounds["ts"].tolist()
    assert eq["agent"].nunique() == 4
    flat = eq[eq["gross_exposure"] == 0]
    assert (flat["equity"] == flat["cash"]).all()


def test_committing_a_committed_round_writes_nothing(traded: tuple[ArenaStore, RunReport]) -> None:
    store, report = traded
    run_id = report.run_id
    tables = (t.RoundRow, t.DecisionRow, t.OrderRow, t.FillRow, t.EquityRow, t.LLMCallRow)
    before = {tb.__tablename__: store.count(tb, run_id) for tb in tables}
    accounts = store.load_accounts(run_id)
    last = store.get_run(run_id).last_round
    for round_no in (last, 3):
        again = RoundWrite(
            run_id=run_id,
            round_no=round_no,
            ts=0,
            snapshot_hash="0" * 16,
            snapshot_content={},
            wall_started=0,
            wall_s=0.0,
            accounts=[],
            decisions=[
                t.DecisionRow(
                    run_id=run_id,
                    round_no=round_no,
                    agent="scalper",
                    symbol="BTC/USDT",
                    ts=0,
                    source="agent",
                    action="enter_long",
                    size=1.0,
                    size_unit="fraction",
                    leverage=1.0,
                )
            ],
            equity=[t.EquityRow(run_id=run_id, agent="x", round_no=round_no, ts=0, cash=0, equity=0, gross_exposure=0)],
        )
        assert store.commit_round(again) is False
    assert {tb.__tablename__: store.count(tb, run_id) for tb in tables} == before
    assert store.load_accounts(run_id) == accounts
    assert store.get_run(run_id).last_round == last


# -- flags and standings ---------------------------------------------------------------------------------------


def test_a_training_cutoff_after_the_window_start_is_flagged(server: LLMServer, desk: Desk, store: ArenaStore) -> None:
    desk.routes["recent"] = holder()
    desk.routes["older"] = holder()
    config = arena_config(
        llm_config(server, "recent", training_cutoff=datetime.date(2025, 6, 1)),
        llm_config(server, "older", training_cutoff=datetime.date(2024, 10, 1)),
    )

    report = start_run(config, store, rounds=2, env=ENV)

    flags = {r.agent: r.cutoff_overlap for r in store.run_agents(report.run_id)}
    assert flags == {"recent": True, "older": False, "sma_cross": False}
    assert set(report.cutoff_flags) == {"recent"}
    assert "2025-06-01" in report.cutoff_flags["recent"]
    assert report.cutoff_flags["recent"] in store.get_run(report.run_id).message
    board = arena_leaderboard(store, report.run_id).set_index("agent")
    assert board["cutoff_overlap"].to_dict() == {"recent": True, "older": False, "sma_cross": False}


def test_the_leaderboard_ranks_llm_and_quant_agents_side_by_side(
    server: LLMServer, desk: Desk, store: ArenaStore, tmp_path: Path
) -> None:
    tokens = {"input_tokens": 1000, "output_tokens": 200}
    greedy = buyer(leverage=50, **tokens)  # over the 5x cap: every entry is clamped

    def mixed(req: Request) -> Reply:
        if req.invocation % 3 == 1:
            return Reply(text="The market is uncertain, I will wait and see.", **tokens)
        return greedy(req)

    desk.routes["mixed"] = mixed
    desk.routes["steady"] = buyer(target_pct=0.4, stop_pct=0.4, **tokens)
    prices = {"cost_per_1m_input": 2.0, "cost_per_1m_output": 8.0}
    config = arena_config(
        llm_config(server, "mixed", **prices), llm_config(server, "steady", **prices), end="2025-03-01T11:00"
    )

    report = start_run(config, store, env=ENV)
    board = arena_leaderboard(store, report.run_id)

    assert list(board.columns) == ARENA_BOARD.names
    assert sorted(board["agent"]) == ["mixed", "sma_cross", "steady"]
    assert board["rank"].tolist() == [1, 2, 3]
    assert board["account_value"].is_monotonic_decreasing
    rows = board.set_index("agent")
    assert rows.loc["sma_cross", "kind"] == "quant"
    assert rows.loc["mixed", "kind"] == "llm"
    eq = store.equity_frame(report.run_id)
    calls = store.llm_calls_frame(report.run_id)
    dec = store.decisions_frame(report.run_id)
    for agent in ("mixed", "steady", "sma_cross"):
        assert rows.loc[agent, "account_value"] == eq[eq["agent"] == agent]["equity"].iloc[-1]
    n_rounds = report.rounds
    for agent in ("mixed", "steady"):
        cl = calls[calls["agent"] == agent]
        assert len(cl) == n_rounds
        assert rows.loc[agent, "llm_cost_usd"] == pytest.approx(n_rounds * (1000 * 2.0 + 200 * 8.0) / 1e6)
        pnl = rows.loc[agent, "pnl"]
        assert rows.loc[agent, "net_return_pct"] == pytest.approx((pnl - rows.loc[agent, "llm_cost_usd"]) / CASH0 * 100)
        p50, p95, p99 = (rows.loc[agent, f"latency_p{q}"] for q in (50, 95, 99))
        assert 0 < p50 <= p95 <= p99 < 5
    prose_rounds = sum(1 for r in range(n_rounds) if (r + 1) % 3 == 1)
    assert rows.loc["mixed", "invalid_output_rate"] == pytest.approx(prose_rounds / n_rounds)
    assert rows.loc["steady", "invalid_output_rate"] == 0.0
    clamped = dec[(dec["agent"] == "mixed") & dec["clamped"]]
    assert rows.loc["mixed", "risk_clamps"] == len(clamped) > 0
    assert clamped["verdict"].str.contains("leverage 50 clamped to max 5").all()
    assert rows.loc["steady", "risk_clamps"] == 0
    assert rows.loc["sma_cross", "llm_cost_usd"] == 0.0
    assert math.isnan(rows.loc["sma_cross", "invalid_output_rate"])
    assert not board["cutoff_overlap"].any()

    paths = export_leaderboard(board, tmp_path / "board")
    from_csv = pd.read_csv(paths["csv"])
    assert from_csv["agent"].tolist() == board["agent"].tolist()
    assert from_csv["account_value"].tolist() == pytest.approx(board["account_value"].tolist())
    from_json = json.loads(paths["json"].read_text())
    assert [r["agent"] for r in from_json] == board["agent"].tolist()
    assert from_json[0].keys() == set(ARENA_BOARD.names)


def test_period_results_cut_equity_and_fills_and_start_from_the_prior_account_value(
    traded: tuple[ArenaStore, RunReport],
) -> None:
    store, report = traded
    full = results_from_store(store, report.run_id)
    name = "scalper"
    equity = full[name].equity
    lo, hi = equity.index[5], equity.index[15]
    cut = period_results(full, lo, hi)[name]
    assert cut.equity.index[0] == lo
    assert cut.equity.index[-1] == hi
    assert cut.initial_cash == equity.iloc[4]  # the account value at the bar before the period
    fills = full[name].fills
    inside = fills[(fills["timestamp"] >= lo) & (fills["timestamp"] <= hi)]
    assert cut.fills["order_id"].tolist() == inside["order_id"].tolist()
    assert period_results(full)[name].initial_cash == full[name].initial_cash  # open period: the whole run
