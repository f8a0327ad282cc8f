"""The batch path: a numba kernel that replays target positions with the step loop's exact rules.

`run_batch(agent, market, config)` takes an agent's `decide_batch` targets and simulates one isolated account
bar by bar in compiled code. It follows `SimBroker`'s event order (funding at the open, pending fills at the open,
intrabar exits, decisions at the close) and calls the same `rules` functions, the RiskEngine's policy
(`rules.review_decision`) included, so the fills, the equity curve, the risk verdicts and the fill-time rejections
equal the step loop's; `tests/engine/test_parity.py` holds them to that on the real sample.

The kernel logs plain float records (fills, verdicts, fill rejections) into one growing buffer; `run_batch` turns
them into the step loop's objects afterwards, so no Python object is built inside compiled code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from arena_lib.agents.base import BatchAgent, BatchSignals, decision_from_target
from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import Decision, FillKind, Position, RiskVerdict
from arena_lib.data.market import MarketData, ns_to_index
from arena_lib.engine import rules
from arena_lib.engine.broker import FillRejection, exit_order_id, order_id
from arena_lib.engine.results import FILL_COLUMNS, BacktestResult, equity_series
from arena_lib.engine.risk import verdict_from_code

# The kernel logs what happens as rows of one growing event buffer, in execution order (which is each kind's order
# on the step loop). Every row has a bar, a symbol and a kind; the other columns depend on the kind. Fills
# (entry .. liquidation) and fill-time rejections use the F_* columns, verdicts the V_* ones.
F_BAR, F_SYM, F_SIDE, F_QTY, F_PRICE, F_FEE, F_KIND, F_PNL, F_FUNDING, F_FLAGS, F_AT_CLOSE, F_ORIGIN = range(12)
N_FIELDS = 12
KIND_ENTRY, KIND_EXIT, KIND_STOP, KIND_TP, KIND_LIQ = 0, 1, 2, 3, 4
KIND_REJECTED = 5  # an approved entry the account had no capacity for at fill time (F_FLAGS says why)
KIND_VERDICT = 6  # the RiskEngine's policy on one decision (V_* columns)
_KIND_NAMES = {
    KIND_ENTRY: "entry",
    KIND_EXIT: "exit",
    KIND_STOP: "stop_loss",
    KIND_TP: "take_profit",
    KIND_LIQ: "liquidation",
}
# Verdict rows: the position held when deciding, and the outputs of `rules.review_decision`.
V_CURRENT, V_CODE, V_CLAMPS, V_FRACTION = 2, 3, 4, 5
V_LEVERAGE, V_REQUESTED, V_PRICE = 7, 8, 9


@njit(cache=True)
def _room(buf: np.ndarray, k: int) -> np.ndarray:
    """`buf`, or a copy twice its size when record `k` does not fit."""
    if k < buf.shape[0]:
        return buf
    bigger = np.empty((buf.shape[0] * 2, N_FIELDS))
    bigger[: buf.shape[0]] = buf
    return bigger


@njit(cache=True)
def _record(
    buf: np.ndarray,
    k: int,
    bar: float,
    sym: float,
    side: float,
    qty: float,
    price: float,
    fee: float,
    kind: float,
    pnl: float,
    funding: float,
    flags: float,
    at_close: float,
    origin: float,
) -> np.ndarray:
    """Write fill (or fill-time rejection) record `k`, doubling the buffer when it is full."""
    buf = _room(buf, k)
    row = buf[k]
    row[F_BAR], row[F_SYM], row[F_SIDE], row[F_QTY], row[F_PRICE], row[F_FEE] = bar, sym, side, qty, price, fee
    row[F_KIND], row[F_PNL], row[F_FUNDING], row[F_FLAGS] = kind, pnl, funding, flags
    row[F_AT_CLOSE], row[F_ORIGIN] = at_close, origin
    return buf


@njit(cache=True)
def _record_verdict(
    buf: np.ndarray,
    k: int,
    bar: float,
    sym: float,
    current: float,
    code: float,
    clamps: float,
    fraction: float,
    leverage: float,
    requested: float,
    price: float,
) -> np.ndarray:
    """Write verdict record `k` (a `KIND_VERDICT` event), doubling the buffer when it is full."""
    buf = _room(buf, k)
    row = buf[k]
    row[F_BAR], row[F_SYM], row[F_KIND] = bar, sym, KIND_VERDICT
    row[V_CURRENT], row[V_CODE], row[V_CLAMPS], row[V_FRACTION] = current, code, clamps, fraction
    row[V_LEVERAGE], row[V_REQUESTED], row[V_PRICE] = leverage, requested, price
    return buf


@njit(cache=True)
def _equity(cash: float, qty: np.ndarray, margin: np.ndarray, entry: np.ndarray, marks: np.ndarray) -> float:
    total = cash
    for k in range(qty.shape[0]):
        if qty[k] != 0.0:
            total += margin[k] + qty[k] * (marks[k] - entry[k])
    return total


@njit(cache=True)
def simulate(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    has_bar: np.ndarray,
    funding: np.ndarray,
    target: np.ndarray,
    stop_in: np.ndarray,
    tp_in: np.ndarray,
    leverage_in: float,
    cash0: float,
    fee_rate: float,
    slip_bps: float,
    impact: float,
    mmr: float,
    max_lev: float,
    max_pos: float,
    max_gross: float,
    min_free: float,
    allow_reversal: bool,
    fill_at_close: bool,
    min_notional: np.ndarray,
    min_amount: np.ndarray,
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]:
    """Simulate one account.

    `min_notional` and `min_amount` are the exchange's entry minimums, one per symbol (`entry_minimums`).
    Returns (event records, their count, equity per bar, gross exposure per bar, final state); `split_events`
    sorts the events into fills, verdicts and fill-time rejections. The final state's rows are quantity, entry,
    margin, leverage, liquidation, stop, take-profit and funding, one column per symbol.
    """
    n, m = close.shape
    # Open positions, one column per symbol; the names below are views into its rows.
    state = np.zeros((8, m))
    qty, entry, margin, lev, liq = state[0], state[1], state[2], state[3], state[4]
    stop, tp, fund_acc = state[5], state[6], state[7]
    lev[:] = 1.0
    stop[:] = np.nan
    tp[:] = np.nan
    prm = np.array([fee_rate, slip_bps, impact, mmr, max_pos, max_gross, min_free])
    cash = cash0
    open_marks = np.full(m, np.nan)
    close_marks = np.full(m, np.nan)
    marks = np.full(m, np.nan)
    p_on = np.zeros(m, dtype=np.bool_)
    p_dir = np.zeros(m, dtype=np.int64)
    p_frac = np.zeros(m)
    p_lev = np.ones(m)
    p_stop = np.full(m, np.nan)
    p_tp = np.full(m, np.nan)
    p_vol = np.zeros(m)
    p_origin = np.zeros(m, dtype=np.int64)
    buf = np.empty((64, N_FIELDS))
    k = 0
    eq_out = np.empty(n)
    gross_out = np.zeros(n)

    for i in range(n):
        for j in range(m):
            if has_bar[i, j]:
                open_marks[j] = open_[i, j]
        # 1. funding at the open
        for j in range(m):
            if funding[i, j] != 0.0 and qty[j] != 0.0:
                pay = rules.funding_payment(qty[j], open_[i, j], funding[i, j])
                margin[j] = margin[j] - pay
                fund_acc[j] += pay
                liq[j] = rules.margin_liquidation_price(entry[j], qty[j], margin[j], mmr)
        # 2. pending orders at the open
        any_pending = False
        for j in range(m):
            if p_on[j]:
                any_pending = True
        if any_pending:
            for j in range(m):
                marks[j] = open_marks[j] if has_bar[i, j] else close_marks[j]
            for j in range(m):
                if not p_on[j] or not has_bar[i, j]:
                    continue
                p_on[j] = False
                price = open_[i, j]
                marks[j] = price
                (buf, k, cash, refused) = _execute(
                    buf,
                    k,
                    i,
                    j,
                    price,
                    0.0,
                    p_dir[j],
                    p_frac[j],
                    p_lev[j],
                    p_stop[j],
                    p_tp[j],
                    p_vol[j],
                    p_origin[j],
                    cash,
                    state,
                    marks,
                    prm,
                    min_notional,
                    min_amount,
                )
                if refused:
                    buf = _record(
                        buf, k, i, j, p_dir[j], 0.0, price, 0.0, KIND_REJECTED, 0, 0, refused, 0.0, p_origin[j]
                    )
                    k += 1
        # 3. intrabar exits
        for j in range(m):
            if qty[j] == 0.0 or not has_bar[i, j]:
                continue
            d = 1 if qty[j] > 0 else -1
            kind, trig = rules.intrabar_exit(d, open_[i, j], high[i, j], low[i, j], stop[j], tp[j], liq[j])
            if kind == rules.EXIT_NONE:
                continue
            q = abs(qty[j])
            if kind == rules.EXIT_LIQUIDATION:
                buf = _record(buf, k, i, j, -d, q, trig, 0.0, KIND_LIQ, -margin[j], fund_acc[j], 0, 0.0, -1)
                k += 1
            else:
                px = trig
                fk = KIND_TP
                if kind == rules.EXIT_STOP:
                    slip = rules.slippage_fraction(slip_bps, impact, q, volume[i, j])
                    px = rules.market_fill_price(trig, -d, slip)
                    fk = KIND_STOP
                fee = q * px * fee_rate
                pnl = qty[j] * (px - entry[j])
                cash = cash + margin[j] + pnl - fee
                buf = _record(buf, k, i, j, -d, q, px, fee, fk, pnl, fund_acc[j], 0, 0.0, -1)
                k += 1
            qty[j] = 0.0
        for j in range(m):
            if has_bar[i, j]:
                close_marks[j] = close[i, j]
        # 4. decisions at the close, in symbol order: the target's decision (as `decision_from_target` makes it),
        # reviewed by the RiskEngine's policy, then queued or filled at once
        for j in range(m):
            t = target[i, j]
            if not has_bar[i, j] or math.isnan(t):
                continue
            cur = 0 if qty[j] == 0.0 else (1 if qty[j] > 0 else -1)
            if t == 0.0:
                if cur == 0:
                    continue
                action = rules.ACTION_CLOSE
            else:
                action = rules.ACTION_LONG if t > 0 else rules.ACTION_SHORT
                if action == cur:
                    continue
            price = close_marks[j]
            sl = stop_in[i, j]
            tpv = tp_in[i, j]
            eq = _equity(cash, qty, margin, entry, close_marks)
            code, clamps, frac, lev_o, requested = rules.review_decision(
                action,
                cur,
                price,
                abs(t),
                rules.UNIT_FRACTION,
                leverage_in,
                not math.isnan(sl),
                sl,
                not math.isnan(tpv),
                tpv,
                eq,
                fee_rate,
                max_lev,
                allow_reversal,
            )
            buf = _record_verdict(buf, k, i, j, cur, code, clamps, frac, lev_o, requested, price)
            k += 1
            if code != rules.VERDICT_APPROVED:
                continue
            direction = action  # ACTION_CLOSE is 0, entries their direction: what `_execute` takes
            if fill_at_close:
                for c in range(m):
                    marks[c] = close_marks[c]
                (buf, k, cash, refused) = _execute(
                    buf,
                    k,
                    i,
                    j,
                    price,
                    1.0,
                    direction,
                    frac,
                    lev_o,
                    sl,
                    tpv,
                    volume[i, j],
                    i,
                    cash,
                    state,
                    marks,
                    prm,
                    min_notional,
                    min_amount,
                )
                if refused:
                    buf = _record(buf, k, i, j, direction, 0.0, price, 0.0, KIND_REJECTED, 0, 0, refused, 1.0, i)
                    k += 1
            else:
                p_on[j] = True
                p_dir[j] = direction
                p_frac[j] = frac
                p_lev[j] = lev_o
                p_stop[j] = sl
                p_tp[j] = tpv
                p_vol[j] = volume[i, j]
                p_origin[j] = i
        eq_out[i] = _equity(cash, qty, margin, entry, close_marks)
        g = 0.0
        for j in range(m):
            if qty[j] != 0.0:
                g += abs(qty[j]) * close_marks[j]
        gross_out[i] = g
    return buf, k, eq_out, gross_out, state


@njit(cache=True)
def _execute(
    buf: np.ndarray,
    k: int,
    i: int,
    j: int,
    price: float,
    at_close: float,
    direction: int,
    frac: float,
    lev_o: float,
    sl: float,
    tpv: float,
    vol: float,
    origin: int,
    cash: float,
    state: np.ndarray,
    marks: np.ndarray,
    prm: np.ndarray,
    min_notional: np.ndarray,
    min_amount: np.ndarray,
) -> tuple[np.ndarray, int, float, int]:
    """Mirror of `SimBroker.execute`: close what the order closes or reverses, then enter.

    Returns the fill buffer, its count, the cash, and the fill-time cap flags when the entry found no capacity or
    fell below the exchange's minimums (0 otherwise). `state` holds the open positions (rows as in `simulate`);
    `prm` the costs and limits (fee rate, slippage bps, impact, maintenance margin rate, max position, max gross,
    min free margin); `min_notional` / `min_amount` the per-symbol minimums.
    """
    qty, entry, margin, lev, liq = state[0], state[1], state[2], state[3], state[4]
    stop, tp, fund_acc = state[5], state[6], state[7]
    fee_rate, slip_bps, impact, mmr = prm[0], prm[1], prm[2], prm[3]
    max_pos, max_gross, min_free = prm[4], prm[5], prm[6]
    if qty[j] != 0.0:
        d = 1 if qty[j] > 0 else -1
        if direction == 0 or direction != d:
            side = -d
            q = abs(qty[j])
            slip = rules.slippage_fraction(slip_bps, impact, q, vol)
            px = rules.market_fill_price(price, side, slip)
            fee = q * px * fee_rate
            pnl = qty[j] * (px - entry[j])
            cash = cash + margin[j] + pnl - fee
            buf = _record(buf, k, i, j, side, q, px, fee, KIND_EXIT, pnl, fund_acc[j], 0, at_close, origin)
            k += 1
            qty[j] = 0.0
    if direction == 0 or qty[j] != 0.0:
        return buf, k, cash, 0
    eq = _equity(cash, qty, margin, entry, marks)
    gross = 0.0
    for c in range(qty.shape[0]):
        if qty[c] != 0.0 and c != j:
            gross += abs(qty[c]) * marks[c]
    min_n, min_a = min_notional[j], min_amount[j]
    q0, _ = rules.entry_size(frac, eq, cash, price, lev_o, fee_rate, gross, max_pos, max_gross, min_free, min_n, min_a)
    slip = rules.slippage_fraction(slip_bps, impact, q0, vol)
    px = rules.market_fill_price(price, direction, slip)
    q, flags = rules.entry_size(frac, eq, cash, px, lev_o, fee_rate, gross, max_pos, max_gross, min_free, min_n, min_a)
    if q <= 0.0:
        return buf, k, cash, flags
    fee = q * px * fee_rate
    mg = q * px / lev_o
    cash = cash - mg - fee
    qty[j] = direction * q
    entry[j] = px
    margin[j] = mg
    lev[j] = lev_o
    liq[j] = rules.liquidation_price(px, direction, lev_o, mmr)
    stop[j] = sl
    tp[j] = tpv
    fund_acc[j] = 0.0
    buf = _record(buf, k, i, j, direction, q, px, fee, KIND_ENTRY, 0.0, 0.0, flags, at_close, origin)
    return buf, k + 1, cash, 0


def entry_minimums(config: BacktestConfig, symbols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The exchange's entry minimums (notional, amount) as arrays indexed like `symbols`, as `simulate` takes them;
    the values `SimBroker` uses for the same symbols."""
    ex = config.execution
    notional = np.array([ex.min_notional_for(s) for s in symbols], dtype=np.float64)
    amount = np.array([ex.min_amount_for(s) for s in symbols], dtype=np.float64)
    return notional, amount


def simulate_args(market: MarketData, sig: BatchSignals, config: BacktestConfig) -> tuple[Any, ...]:
    """The positional arguments of `simulate` for `sig` on `market` under `config`."""
    nan = np.full(market.close.shape, np.nan)
    c, ex, risk = config.costs, config.execution, config.risk
    min_notional, min_amount = entry_minimums(config, tuple(market.symbols))
    return (
        market.open,
        market.high,
        market.low,
        market.close,
        market.volume,
        market.has_bar,
        market.funding,
        np.ascontiguousarray(sig.target, dtype=np.float64),
        nan if sig.stop_loss is None else np.ascontiguousarray(sig.stop_loss, dtype=np.float64),
        nan if sig.take_profit is None else np.ascontiguousarray(sig.take_profit, dtype=np.float64),
        float(sig.leverage),
        ex.initial_cash,
        c.fee_rate,
        c.slippage_bps,
        c.impact_coef,
        ex.maintenance_margin_rate,
        risk.max_leverage,
        risk.max_position_notional,
        risk.max_gross_exposure,
        risk.min_free_margin,
        risk.allow_reversal,
        ex.fill == "close",
        min_notional,
        min_amount,
    )


def run_batch(
    agent: BatchAgent, market: MarketData, config: BacktestConfig, *, run_id: str = "replay"
) -> BacktestResult:
    """Run an agent's `decide_batch` targets through the kernel; the same result as the step loop's.

    Fills, equity, exposure, final positions, risk verdicts and fill-time rejections equal those of
    `run_replay([agent], ...)` for an agent whose `decide` follows its targets (`TargetAgent`, `ModelAgent`).
    Prefer `arena_lib.backtest`, which picks this path for batch agents.
    """
    sig = agent.decide_batch(market)
    shape = market.close.shape
    if sig.target.shape != shape:
        raise ValueError(f"{agent.name}: decide_batch returned targets of shape {sig.target.shape}, expected {shape}")
    events, n_events, eq, gross, state = simulate(*simulate_args(market, sig, config))
    fill_rec, verdict_rec, rejection_rec = split_events(events[:n_events])
    close_times = market.close_times()
    fills = _fills_frame(fill_rec, market, run_id, agent.name)
    return BacktestResult(
        agent=agent.name,
        equity=equity_series(eq, close_times, agent.name),
        fills=fills,
        open_positions=_open_positions(state, fills, market),
        exposure=equity_series(gross, close_times, "gross_exposure"),
        initial_cash=config.execution.initial_cash,
        verdicts=_verdicts(verdict_rec, market, sig, agent.name, config.risk.max_leverage),
        fill_rejections=_fill_rejections(rejection_rec, market, run_id, agent.name, config),
        meta={
            "path": "batch",
            "run_id": run_id,
            "data_hash": market.fingerprint(),
            "spec": config.spec_hash(),
            "fill_rejections": len(rejection_rec),
        },
    )


def split_events(events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's event records split by kind, each in execution order: (fills, verdicts, fill rejections)."""
    kind = events[:, F_KIND]
    return events[kind <= KIND_LIQ], events[kind == KIND_VERDICT], events[kind == KIND_REJECTED]


def _levels_at(levels: np.ndarray | None, bars: np.ndarray, syms: np.ndarray) -> list[float | None]:
    """Stops or take-profits of the signals at (bar, symbol) cells, as decisions carry them: None where none."""
    if levels is None:
        return [None] * len(bars)
    return [None if math.isnan(x) else x for x in levels[bars, syms].tolist()]


def _verdicts(
    rec: np.ndarray, market: MarketData, sig: BatchSignals, agent: str, max_leverage: float
) -> list[RiskVerdict]:
    """Kernel verdict records as the step loop's `RiskVerdict`s, in its order (bar, then symbol).

    Each carries the decision the agent's `decide` makes for that target: `decision_from_target` with the signal's
    leverage and levels and the agent's name as the reason, as `TargetAgent` and `ModelAgent` build it.
    """
    bars, syms = rec[:, F_BAR].astype(np.int64), rec[:, F_SYM].astype(np.int64)
    targets = sig.target[bars, syms].tolist()
    stops, takes = _levels_at(sig.stop_loss, bars, syms), _levels_at(sig.take_profit, bars, syms)
    times = (market.times[bars] + market.bar_ns).tolist()
    codes = rec[:, [V_CURRENT, V_CODE, V_CLAMPS]].astype(np.int64).tolist()
    amounts = rec[:, [V_FRACTION, V_LEVERAGE, V_REQUESTED, V_PRICE]].tolist()
    symbols, leverage = market.symbols, float(sig.leverage)
    decisions: dict[tuple[int, float, int, float | None, float | None], Decision] = {}  # frozen: shareable
    out: list[RiskVerdict] = []
    for j, target, stop, take, ts, (current, code, clamps), (fraction, lev, requested, price) in zip(
        syms.tolist(), targets, stops, takes, times, codes, amounts, strict=True
    ):
        key = (j, target, current, stop, take)
        decision = decisions.get(key)
        if decision is None:
            made = decision_from_target(symbols[j], target, current, leverage, stop, take, agent)
            if made is None:  # the kernel reviews only targets that change the position
                raise AssertionError(f"kernel verdict without a decision: {agent} {symbols[j]} at {ts}")
            decision = decisions[key] = made
        out.append(verdict_from_code(decision, code, clamps, fraction, lev, requested, price, max_leverage, ts))
    return out


def _fill_rejections(
    rec: np.ndarray, market: MarketData, run_id: str, agent: str, config: BacktestConfig
) -> list[FillRejection]:
    """Kernel fill-time rejection records as the step loop's `FillRejection`s (same ids, times and reasons)."""
    out: list[FillRejection] = []
    symbols, times, bar_ns = market.symbols, market.times, market.bar_ns
    min_notional, min_amount = entry_minimums(config, tuple(symbols))
    for bar, sym, at_close, origin, flags in rec[:, [F_BAR, F_SYM, F_AT_CLOSE, F_ORIGIN, F_FLAGS]].tolist():
        j = int(sym)
        s = symbols[j]
        oid = order_id(run_id, agent, int(times[int(origin)]) + bar_ns, s)
        t = int(times[int(bar)]) + (bar_ns if at_close > 0 else 0)
        reason = rules.describe_caps(int(flags), float(min_notional[j]), float(min_amount[j]))
        out.append(FillRejection(oid, s, t, reason))
    return out


def _open_positions(state: np.ndarray, fills: pd.DataFrame, market: MarketData) -> dict[str, Position]:
    """The kernel's final state as `Position`s, like the step loop's final portfolio."""
    qty, entry, margin, lev, liq, stop, tp, funding = state
    out: dict[str, Position] = {}
    for j, sym in enumerate(market.symbols):
        if qty[j] == 0.0:
            continue
        opened = fills[(fills["symbol"] == sym) & (fills["kind"] == FillKind.ENTRY.value)].iloc[-1]
        out[sym] = Position(
            symbol=sym,
            quantity=float(qty[j]),
            entry_price=float(entry[j]),
            leverage=float(lev[j]),
            margin=float(margin[j]),
            opened_at=int(opened["timestamp"].value),
            liquidation_price=float(liq[j]),
            stop_loss=None if math.isnan(stop[j]) else float(stop[j]),
            take_profit=None if math.isnan(tp[j]) else float(tp[j]),
            entry_fee=float(opened["fee"]),
            funding_paid=float(funding[j]),
        )
    return out


def _fills_frame(rec: np.ndarray, market: MarketData, run_id: str, agent: str) -> pd.DataFrame:
    """Kernel fill records to the step loop's fill table (same columns, ids and timestamps)."""
    if len(rec) == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in FILL_COLUMNS})
    bars = rec[:, F_BAR].astype(np.int64)
    syms = [market.symbols[s] for s in rec[:, F_SYM].astype(np.int64)]
    t = market.times[bars] + np.where(rec[:, F_AT_CLOSE] > 0, market.bar_ns, 0)
    kinds = rec[:, F_KIND].astype(np.int64)
    ids = []
    account = f"{run_id}/{agent}"
    for s, tt, kd, origin in zip(syms, t, kinds, rec[:, F_ORIGIN].astype(np.int64), strict=True):
        if origin >= 0:
            ids.append(order_id(run_id, agent, int(market.times[origin]) + market.bar_ns, s))
        else:
            ids.append(exit_order_id(account, int(tt), s, FillKind(_KIND_NAMES[int(kd)])))
    notes = []
    for kd, fl in zip(kinds, rec[:, F_FLAGS].astype(np.int64), strict=True):
        notes.append("isolated margin lost" if kd == KIND_LIQ else rules.describe_caps(int(fl)))
    return pd.DataFrame(
        {
            "order_id": ids,
            "symbol": syms,
            "timestamp": ns_to_index(t, None),
            "side": np.where(rec[:, F_SIDE] > 0, "buy", "sell"),
            "quantity": rec[:, F_QTY],
            "price": rec[:, F_PRICE],
            "fee": rec[:, F_FEE],
            "kind": [_KIND_NAMES[int(x)] for x in kinds],
            "realized_pnl": rec[:, F_PNL],
            "funding": rec[:, F_FUNDING],
            "note": notes,
        }
    )
