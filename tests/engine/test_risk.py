"""Executable specification of the RiskEngine: every decision is validated, clamped or rejected, with a reason.

The unit tests call `RiskEngine.review` directly. The integration test runs a deliberately badly behaved agent
through the real step loop (`run_replay`) on the real sample and checks that the run survives, that every bad
decision is answered with a reason, and that the account's ledger still reconciles to the cent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.base import AccountView
from arena_lib.core.config import BacktestConfig, RiskLimits
from arena_lib.core.types import Action, Decision, Position, SizeUnit
from arena_lib.data.market import MarketData
from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.data.snapshot import MarketSnapshot
from arena_lib.engine.loop import run_replay
from arena_lib.engine.risk import RiskEngine, verdict_from_code, verdict_reasons
from arena_lib.engine.rules import CLAMP_LEVERAGE, CLAMP_SIZE, VERDICT_APPROVED

FEE = 0.0005
SYM = "BTC/USDT"
PRICE = 20_000.0


def _engine(**limits: object) -> RiskEngine:
    return RiskEngine(RiskLimits(**limits), fee_rate=FEE)  # type: ignore[arg-type]


def _account(equity: float = 10_000.0, cash: float | None = None, direction: int = 0) -> AccountView:
    positions: dict[str, Position] = {}
    if direction:
        positions[SYM] = Position(SYM, 0.1 * direction, PRICE, 2.0, 1_000.0, 0, PRICE * (1 - direction * 0.495))
    return AccountView(cash=equity if cash is None else cash, equity=equity, initial_cash=10_000.0, positions=positions)


def _long(**kw: object) -> Decision:
    return Decision(SYM, Action.ENTER_LONG, **kw)  # type: ignore[arg-type]


def _short(**kw: object) -> Decision:
    return Decision(SYM, Action.ENTER_SHORT, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# sizes
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("size", "shown"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf"), (-0.5, "-0.5"), (0.0, "0.0")]
)
def test_bad_size_is_rejected_with_a_clear_reason(size: float, shown: str) -> None:
    v = _engine().review(_long(size=size), _account(), PRICE)
    assert not v.approved
    assert v.fraction == 0.0
    assert len(v.reasons) == 1
    assert "size must be a positive finite number" in v.reasons[0]
    assert v.reasons[0].endswith(f"got {shown}")


def test_size_above_all_equity_is_clamped_to_100_percent() -> None:
    v = _engine().review(_long(size=1.5), _account(), PRICE)
    assert v.approved
    assert v.clamped
    assert v.fraction == 1.0
    assert v.reasons == ("size is 150% of equity: clamped to 100%",)


def test_plain_fraction_passes_unchanged() -> None:
    v = _engine().review(_long(size=0.25, leverage=3.0), _account(), PRICE)
    assert v.approved
    assert not v.clamped
    assert (v.fraction, v.leverage, v.reasons) == (0.25, 3.0, ())


def test_quantity_unit_becomes_the_fraction_of_equity_it_commits() -> None:
    # 0.25 BTC at 20_000 = 5_000 notional; at 2x it commits 5_000 * (1/2 + 0.0005) = 2_502.5 of 10_000 equity.
    v = _engine().review(_long(size=0.25, size_unit=SizeUnit.QUANTITY, leverage=2.0), _account(), PRICE)
    assert v.approved
    assert not v.clamped
    assert v.fraction == pytest.approx(0.25025, rel=1e-12)


def test_notional_unit_becomes_the_fraction_of_equity_it_commits() -> None:
    # 4_000 quote at 4x commits 4_000 * (0.25 + 0.0005) = 1_002 of 10_000 equity.
    v = _engine().review(_short(size=4_000.0, size_unit=SizeUnit.NOTIONAL, leverage=4.0), _account(), PRICE)
    assert v.approved
    assert v.fraction == pytest.approx(0.1002, rel=1e-12)
    # the fraction is resolved against the account's equity, not its initial cash
    v2 = _engine().review(_short(size=4_000.0, size_unit=SizeUnit.NOTIONAL, leverage=4.0), _account(5_000.0), PRICE)
    assert v2.fraction == pytest.approx(0.2004, rel=1e-12)


def test_quantity_sizing_uses_the_clamped_leverage() -> None:
    # 1 BTC = 20_000 notional; leverage 100 is clamped to 5, so it commits 20_000 * (0.2 + 0.0005) = 4_010.
    v = _engine().review(_long(size=1.0, size_unit=SizeUnit.QUANTITY, leverage=100.0), _account(), PRICE)
    assert v.approved
    assert v.leverage == 5.0
    assert v.fraction == pytest.approx(0.401, rel=1e-12)


def test_quantity_or_notional_above_equity_is_clamped() -> None:
    # 3 BTC = 60_000 notional at 1x commits 60_030: 600.3% of equity
    v = _engine().review(_long(size=3.0, size_unit=SizeUnit.QUANTITY), _account(), PRICE)
    assert v.approved
    assert v.fraction == 1.0
    assert v.reasons == ("size is 600% of equity: clamped to 100%",)
    v = _engine().review(_long(size=1e9, size_unit=SizeUnit.NOTIONAL), _account(), PRICE)
    assert v.approved
    assert v.fraction == 1.0


def test_quantity_against_no_equity_is_rejected() -> None:
    v = _engine().review(_long(size=1.0, size_unit=SizeUnit.QUANTITY), _account(equity=0.0), PRICE)
    assert not v.approved
    assert "not a positive amount of equity" in v.reasons[0]


# ---------------------------------------------------------------------------------------------------------------
# leverage
# ---------------------------------------------------------------------------------------------------------------
def test_leverage_above_the_limit_is_clamped_naming_both_numbers() -> None:
    v = _engine(max_leverage=5.0).review(_long(size=0.5, leverage=100.0), _account(), PRICE)
    assert v.approved
    assert v.clamped
    assert v.leverage == 5.0
    assert v.fraction == 0.5
    assert v.reasons == ("leverage 100 clamped to max 5",)


def test_leverage_and_size_clamps_are_both_named() -> None:
    v = _engine(max_leverage=10.0).review(_long(size=2.0, leverage=12.5), _account(), PRICE)
    assert v.approved
    assert (v.leverage, v.fraction) == (10.0, 1.0)
    assert v.reasons == ("leverage 12.5 clamped to max 10", "size is 200% of equity: clamped to 100%")


@pytest.mark.parametrize("lev", [math.nan, math.inf, 0.0, -2.0])
def test_bad_leverage_is_rejected(lev: float) -> None:
    v = _engine().review(_long(size=0.5, leverage=lev), _account(), PRICE)
    assert not v.approved
    assert v.reasons[0].startswith("leverage must be a positive finite number")
    assert repr(lev) in v.reasons[0]


# ---------------------------------------------------------------------------------------------------------------
# positions: pyramiding, reversal, close
# ---------------------------------------------------------------------------------------------------------------
def test_pyramiding_is_rejected() -> None:
    v = _engine().review(_long(size=0.1), _account(direction=+1), PRICE)
    assert not v.approved
    assert "no pyramiding" in v.reasons[0]
    v = _engine().review(_short(size=0.1), _account(direction=-1), PRICE)
    assert not v.approved
    assert "no pyramiding" in v.reasons[0]


def test_reversal_rejected_when_not_allowed() -> None:
    v = _engine(allow_reversal=False).review(_short(size=0.1), _account(direction=+1), PRICE)
    assert not v.approved
    assert "reversals not allowed" in v.reasons[0]


def test_reversal_approved_when_allowed() -> None:
    v = _engine(allow_reversal=True).review(_short(size=0.1), _account(direction=+1), PRICE)
    assert v.approved
    assert v.fraction == 0.1


def test_close_without_position_is_rejected() -> None:
    v = _engine().review(Decision(SYM, Action.CLOSE, size=0.0), _account(), PRICE)
    assert not v.approved
    assert v.reasons == (f"{SYM}: no open position to close",)


def test_close_with_a_position_is_approved_whatever_its_size_field() -> None:
    v = _engine().review(Decision(SYM, Action.CLOSE, size=math.nan, leverage=math.nan), _account(direction=-1), PRICE)
    assert v.approved
    assert v.reasons == ()


@pytest.mark.parametrize(
    ("decision", "reason"),
    [
        (_long(size=None), "size must be a positive finite number, got None"),
        (_long(size="0.5"), "size must be a positive finite number, got '0.5'"),
        (_long(size=0.5, leverage=None), "leverage must be a positive finite number, got None"),
        (_long(size=0.5, leverage="2"), "leverage must be a positive finite number, got '2'"),
        (_long(size=0.5, stop_loss="19000"), "stop-loss '19000' is on the wrong side of the price 20000 for a long"),
        (_short(size=0.5, take_profit=math.inf), "take-profit inf is on the wrong side of the price 20000 for a short"),
    ],
)
def test_none_and_non_numeric_inputs_are_rejected_naming_them(decision: Decision, reason: str) -> None:
    v = _engine().review(decision, _account(), PRICE)
    assert not v.approved
    assert v.reasons == (reason,)
    assert (v.fraction, v.leverage) == (0.0, 1.0)


@pytest.mark.parametrize("price", [None, math.inf, 0.0, -1.0])
def test_invalid_price_is_rejected_for_entries_and_closes(price: float) -> None:
    for decision in (_long(size=0.5), Decision(SYM, Action.CLOSE)):
        v = _engine().review(decision, _account(direction=-1), price)  # type: ignore[arg-type]
        assert not v.approved
        assert v.reasons == (f"{SYM}: no valid price at decision time",)


def test_a_clamp_is_dropped_when_a_later_rule_rejects() -> None:
    # leverage 100 would be clamped, but the reversal is refused: the verdict names only the refusal
    v = _engine(allow_reversal=False).review(_short(size=2.0, leverage=100.0), _account(direction=+1), PRICE)
    assert not v.approved
    assert v.reasons == (f"{SYM}: opposite position open; close it first (reversals not allowed)",)


def test_reasons_come_from_the_one_shared_function() -> None:
    """The batch kernel builds its verdicts with `verdict_from_code` too: same code, same text."""
    d = _long(size=1.5, leverage=8.0)
    v = _engine(max_leverage=5.0).review(d, _account(), PRICE)
    assert v == verdict_from_code(d, VERDICT_APPROVED, CLAMP_LEVERAGE | CLAMP_SIZE, 1.0, 5.0, 1.5, PRICE, 5.0)
    assert v.reasons == ("leverage 8 clamped to max 5", "size is 150% of equity: clamped to 100%")
    with pytest.raises(ValueError, match="unknown verdict code 99"):
        verdict_reasons(99, 0, d, PRICE, 1.5, 5.0)


def test_hold_and_missing_price_are_rejected() -> None:
    assert not _engine().review(Decision(SYM, Action.HOLD), _account(), PRICE).approved
    v = _engine().review(_long(size=0.5), _account(), math.nan)
    assert not v.approved
    assert "no valid price" in v.reasons[0]


# ---------------------------------------------------------------------------------------------------------------
# protective levels
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("decision", "word"),
    [
        (_long(size=0.5, stop_loss=20_100.0), "stop-loss"),  # a long's stop above the price
        (_long(size=0.5, stop_loss=PRICE), "stop-loss"),  # ... or at it
        (_short(size=0.5, stop_loss=19_900.0), "stop-loss"),  # a short's stop below the price
        (_long(size=0.5, take_profit=19_900.0), "take-profit"),  # a long's target below the price
        (_short(size=0.5, take_profit=20_100.0), "take-profit"),  # a short's target above the price
        (_long(size=0.5, stop_loss=math.nan), "stop-loss"),
        (_long(size=0.5, stop_loss=-5.0), "stop-loss"),
        (_short(size=0.5, take_profit=0.0), "take-profit"),
    ],
)
def test_levels_on_the_wrong_side_are_rejected(decision: Decision, word: str) -> None:
    v = _engine().review(decision, _account(), PRICE)
    assert not v.approved
    assert v.reasons[0].startswith(word)
    assert "wrong side of the price 20000" in v.reasons[0]
    assert ("for a long" if decision.direction > 0 else "for a short") in v.reasons[0]


def test_levels_on_the_right_side_are_approved() -> None:
    assert _engine().review(_long(size=0.5, stop_loss=19_000.0, take_profit=22_000.0), _account(), PRICE).approved
    assert _engine().review(_short(size=0.5, stop_loss=21_000.0, take_profit=18_000.0), _account(), PRICE).approved


# ---------------------------------------------------------------------------------------------------------------
# integration: a badly behaved agent through the real step loop
# ---------------------------------------------------------------------------------------------------------------
BTC, ETH = "BTC/USDT", "ETH/USDT"
BTC_LEVERAGE_ASKED, MAX_LEVERAGE, ETH_LEVERAGE = 100.0, 20.0, 3.0


@dataclass
class UnrulyAgent:
    """Emits a mix of sane and broken decisions on a fixed schedule, and records what its account looked like."""

    name: str = "unruly"
    round: int = 0
    seen: list[AccountView] = field(default_factory=list)

    def decide(self, snapshot: MarketSnapshot, account: AccountView) -> Sequence[Decision]:
        r = self.round
        self.round += 1
        self.seen.append(account)
        out: list[Decision] = []
        if r % 12 == 0:  # BTC: in at an absurd leverage (clamped), or out
            if account.direction(BTC) == 0:
                size = 0.3 if r % 24 == 0 else 2.0  # 2.0 = 200% of equity: clamped
                out.append(Decision(BTC, Action.ENTER_LONG, size=size, leverage=BTC_LEVERAGE_ASKED))
            else:
                out.append(Decision(BTC, Action.CLOSE))
        if r % 12 == 6:  # ETH: a short, and a second, contradictory decision for ETH in the same round
            if account.direction(ETH) == 0:
                out.append(Decision(ETH, Action.ENTER_SHORT, size=0.3, leverage=ETH_LEVERAGE))
                out.append(Decision(ETH, Action.ENTER_LONG, size=0.3, leverage=ETH_LEVERAGE))
            else:
                out.append(Decision(ETH, Action.CLOSE))
                out.append(Decision(ETH, Action.CLOSE))
        k = r % 50
        if k == 1:
            out.append(Decision(ETH, Action.ENTER_LONG, size=math.nan, leverage=ETH_LEVERAGE))
        elif k == 2:
            out.append(Decision("DOGE/USDT", Action.ENTER_LONG, size=0.5))
        elif k == 3:
            out.append(Decision(ETH, Action.ENTER_SHORT, size=math.inf, leverage=ETH_LEVERAGE))
        elif k == 4:
            out.append(Decision(ETH, Action.ENTER_SHORT, size=-1.0, leverage=ETH_LEVERAGE))
        elif k == 5:
            out.append(Decision(ETH, Action.ENTER_SHORT, size=0.1, leverage=math.nan))
        elif k == 7:
            close = snapshot.close(ETH)
            out.append(Decision(ETH, Action.ENTER_LONG, size=0.1, leverage=ETH_LEVERAGE, stop_loss=close * 1.01))
        elif k == 8:
            out.append(Decision(ETH, Action.CLOSE) if account.direction(ETH) == 0 else Decision(ETH, Action.HOLD))
        return out


@pytest.fixture(scope="module")
def unruly_run() -> tuple[UnrulyAgent, MarketData, object]:
    # May-June 2022 (the LUNA and 3AC crashes): 20x longs get liquidated, funding settles every 8h.
    start, end = "2022-05-01", "2022-06-30"
    frames = {s: load_sample(s, "1h", start, end) for s in (BTC, ETH)}
    funding = {s: load_sample_funding(s) for s in (BTC, ETH)}
    market = MarketData.from_frames(frames, "1h", funding)
    config = BacktestConfig(symbols=(BTC, ETH), risk=RiskLimits(max_leverage=MAX_LEVERAGE))
    agent = UnrulyAgent()
    result = run_replay([agent], market, config, run_id="unruly")["unruly"]
    return agent, market, result


def test_unruly_agent_run_completes_with_every_bad_decision_answered(unruly_run: tuple) -> None:
    agent, market, result = unruly_run
    assert agent.round == market.n_bars  # it was asked at every bar
    assert len(result.equity) == market.n_bars
    assert np.isfinite(result.equity.to_numpy()).all()

    reasons = [(v.approved, "; ".join(v.reasons)) for v in result.verdicts]
    rejected = [r for ok, r in reasons if not ok]
    clamped = [r for ok, r in reasons if ok and r]

    def count(texts: list[str], needle: str) -> int:
        return sum(needle in t for t in texts)

    assert count(rejected, "size must be a positive finite number, got nan") > 0
    assert count(rejected, "size must be a positive finite number, got inf") > 0
    assert count(rejected, "size must be a positive finite number, got -1.0") > 0
    assert count(rejected, "leverage must be a positive finite number, got nan") > 0
    assert count(rejected, "unknown symbol 'DOGE/USDT'") > 0
    assert count(rejected, "one action per symbol per round") > 0
    assert count(rejected, "stop-loss") > 0
    assert count(rejected, "no open position to close") > 0
    assert count(clamped, "leverage 100 clamped to max 20") > 0
    assert count(clamped, "size is 200% of equity: clamped to 100%") > 0
    # every verdict either passed untouched or carries at least one reason
    assert all(v.approved or v.reasons for v in result.verdicts)

    # every verdict (the unknown-symbol and duplicate ones too) is stamped with its decision time, a bar close
    close_ns = set(market.close_times_ns)
    assert all(v.ts in close_ns for v in result.verdicts)
    assert [v.ts for v in result.verdicts] == sorted(v.ts for v in result.verdicts)

    table = result.rejections()
    assert list(table.columns) == ["timestamp", "symbol", "action", "approved", "reasons"]
    assert len(table) == sum(1 for v in result.verdicts if v.reasons)
    flagged = [v for v in result.verdicts if v.reasons]
    assert list(table["timestamp"]) == [pd.Timestamp(v.ts, tz="UTC") for v in flagged]
    assert (table["reasons"].str.len() > 0).all()
    assert set(table.loc[~table["approved"], "symbol"]) >= {ETH, "DOGE/USDT"}
    assert table.loc[table["approved"], "reasons"].str.contains("clamped").all()
    # the duplicate ETH decision never traded: at most one ETH fill per timestamp from agent orders
    # (engine-made exits are named run/agent/t/symbol/kind; the agent's orders run/agent/t/symbol)
    engine_made = result.fills["order_id"].str.endswith(("/stop_loss", "/take_profit", "/liquidation"))
    assert (engine_made == result.fills["kind"].isin(["stop_loss", "take_profit", "liquidation"])).all()
    agent_fills = result.fills[~engine_made]
    assert len(agent_fills) > 0
    assert not agent_fills.duplicated(["symbol", "timestamp", "kind"]).any()


def test_unruly_agent_ledger_reconciles(unruly_run: tuple) -> None:
    """Replaying the fills by hand gives the final cash, and final equity is cash + margins + unrealized PnL.

    Funding is paid from each position's isolated margin: an exit returns the margin less the funding the position
    paid, a liquidation loses that reduced margin, and cash itself never moves at a settlement.
    """
    agent, market, result = unruly_run
    fills = result.fills
    kinds = fills["kind"].value_counts().to_dict()
    # the schedule really exercises every path
    assert kinds.get("liquidation", 0) > 0
    assert kinds.get("exit", 0) > 0
    assert kinds.get("entry", 0) > 0
    assert (fills["funding"] != 0).any()
    assert len(result.fill_rejections) == 0 or all(r.reason for r in result.fill_rejections)

    leverage = {BTC: MAX_LEVERAGE, ETH: ETH_LEVERAGE}  # what the RiskEngine let through for each symbol
    cash = result.initial_cash
    margins: dict[str, float] = {}
    entries: dict[str, tuple[float, float, int]] = {}
    funding_closed = 0.0
    liquidations_after_funding = 0
    for f in fills.itertuples():
        if f.kind == "entry":
            assert f.symbol not in margins
            margin = f.quantity * f.price / leverage[f.symbol]
            assert f.fee == pytest.approx(f.quantity * f.price * 5e-4, rel=1e-12)
            cash -= margin + f.fee
            margins[f.symbol] = margin
            entries[f.symbol] = (f.quantity, f.price, 1 if f.side == "buy" else -1)
            continue
        qty, entry, direction = entries.pop(f.symbol)
        margin = margins.pop(f.symbol)
        assert f.quantity == qty
        assert f.side == ("sell" if direction > 0 else "buy")
        funding_closed += f.funding
        margin_left = margin - f.funding  # funding came out of the isolated margin
        if f.kind == "liquidation":
            assert f.fee == 0.0
            liquidations_after_funding += f.funding != 0.0
            # exactly the margin left is lost, cash unchanged
            assert f.realized_pnl == pytest.approx(-margin_left, rel=1e-12)
            continue
        assert f.realized_pnl == pytest.approx(direction * qty * (f.price - entry), rel=1e-9, abs=1e-9)
        cash += margin_left + f.realized_pnl - f.fee
    assert liquidations_after_funding > 0  # a liquidated position had paid (or received) funding
    open_positions = result.open_positions
    assert set(open_positions) == set(margins)
    funding_open = sum(p.funding_paid for p in open_positions.values())

    final = agent.seen[-1]  # next_open fills: the last round's decisions never fill, so this is the final state
    assert final.cash == pytest.approx(cash, rel=1e-10)
    for sym, pos in open_positions.items():
        assert pos.margin == pytest.approx(margins[sym] - pos.funding_paid, rel=1e-12)
    last_close = {s: float(market.series[s].close[-1]) for s in market.symbols}
    marked = final.cash + sum(
        p.margin + p.quantity * (last_close[s] - p.entry_price) for s, p in open_positions.items()
    )
    assert result.final_equity == pytest.approx(marked, rel=1e-12)
    assert result.final_equity == final.equity
    # funding really moved money: the total is what the exits and the open positions carry
    assert funding_closed + funding_open != 0.0
    assert pd.notna(result.final_equity)
