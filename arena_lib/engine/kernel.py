"""The batch path: a numba kernel that replays target positions with the step loop's exact rules.

`run_batch(agent, market, config)` takes an agent's `decide_batch` targets and simulates one isolated account
bar by bar in compiled code. It follows `SimBroker`'s event order (funding at the open, pending fills at the open,
intrabar exits, decisions at the close) and calls the same `rules` functions, so the fills and the equity curve
equal the step loop's; `tests/engine/test_parity.py` holds them to that on the real sample.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from arena_lib.agents.base import BatchAgent, BatchSignals
from arena_lib.core.config import BacktestConfig
from arena_lib.core.types import FillKind, Position
from arena_lib.data.market import MarketData, ns_to_index
from arena_lib.engine import rules
from arena_lib.engine.broker import exit_order_id
from arena_lib.engine.loop import order_id
from arena_lib.engine.results import FILL_COLUMNS, BacktestResult, equity_series

# Columns of the kernel's fill records.
F_BAR, F_SYM, F_SIDE, F_QTY, F_PRICE, F_FEE, F_KIND, F_PNL, F_FUNDING, F_FLAGS, F_AT_CLOSE, F_ORIGIN = range(12)
N_FIELDS = 12
KIND_ENTRY, KIND_EXIT, KIND_STOP, KIND_TP, KIND_LIQ = 0, 1, 2, 3, 4
_KIND_NAMES = {
    KIND_ENTRY: "entry",
    KIND_EXIT: "exit",
    KIND_STOP: "stop_loss",
    KIND_TP: "take_profit",
    KIND_LIQ: "liquidation",
}
_EXIT_TO_KIND = {rules.EXIT_STOP: KIND_STOP, rules.EXIT_TAKE_PROFIT: KIND_TP, rules.EXIT_LIQUIDATION: KIND_LIQ}


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
    """Write fill record `k`, doubling the buffer when it is full."""
    if k >= buf.shape[0]:
        bigger = np.empty((buf.shape[0] * 2, N_FIELDS))
        bigger[: buf.shape[0]] = buf
        buf = bigger
    row = buf[k]
    row[F_BAR], row[F_SYM], row[F_SIDE], row[F_QTY], row[F_PRICE], row[F_FEE] = bar, sym, side, qty, price, fee
    row[F_KIND], row[F_PNL], row[F_FUNDING], row[F_FLAGS] = kind, pnl, funding, flags
    row[F_AT_CLOSE], row[F_ORIGIN] = at_close, origin
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
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, int, np.ndarray]:
    """Simulate one account.

    Returns (fill records, count, equity per bar, gross exposure per bar, fill-time rejections, final state), the
    final state being rows quantity, entry, margin, leverage, liquidation, stop, take-profit, funding x symbols.
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
    rejected = 0
    eq_out = np.empty(n)
    gross_out = np.zeros(n)
    lev_ok = leverage_in > 0.0 and math.isfinite(leverage_in)
    lev_used = min(leverage_in, max_lev) if lev_ok else 1.0

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
                (buf, k, cash, rej) = _execute(
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
                )
                rejected += rej
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
        # 4. decisions at the close, in symbol order
        for j in range(m):
            t = target[i, j]
            if not has_bar[i, j] or math.isnan(t):
                continue
            cur = 0 if qty[j] == 0.0 else (1 if qty[j] > 0 else -1)
            if t == 0.0:
                if cur == 0:
                    continue
                want = 0
            else:
                want = 1 if t > 0 else -1
                if want == cur:
                    continue
                if not lev_ok or (cur != 0 and not allow_reversal):
                    continue
                price = close_marks[j]
                sl = stop_in[i, j]
                if not math.isnan(sl) and (not (sl > 0.0) or (sl - price) * want >= 0):
                    continue
                tpv = tp_in[i, j]
                if not math.isnan(tpv) and (not (tpv > 0.0) or (tpv - price) * want <= 0):
                    continue
            frac = min(abs(t), 1.0)
            if fill_at_close:
                for c in range(m):
                    marks[c] = close_marks[c]
                (buf, k, cash, rej) = _execute(
                    buf,
                    k,
                    i,
                    j,
                    close_marks[j],
                    1.0,
                    want,
                    frac,
                    lev_used,
                    stop_in[i, j],
                    tp_in[i, j],
                    volume[i, j],
                    i,
                    cash,
                    state,
                    marks,
                    prm,
                )
                rejected += rej
            else:
                p_on[j] = True
                p_dir[j] = want
                p_frac[j] = frac
                p_lev[j] = lev_used
                p_stop[j] = stop_in[i, j]
                p_tp[j] = tp_in[i, j]
                p_vol[j] = volume[i, j]
                p_origin[j] = i
        eq_out[i] = _equity(cash, qty, margin, entry, close_marks)
        g = 0.0
        for j in range(m):
            if qty[j] != 0.0:
                g += abs(qty[j]) * close_marks[j]
        gross_out[i] = g
    return buf, k, eq_out, gross_out, rejected, state


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
) -> tuple[np.ndarray, int, float, int]:
    """Mirror of `SimBroker.execute`: close what the order closes or reverses, then enter.

    `state` holds the open positions (rows as in `simulate`); `prm` the costs and limits
    (fee rate, slippage bps, impact, maintenance margin rate, max position, max gross, min free margin).
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
    q0, _ = rules.entry_size(frac, eq, cash, price, lev_o, fee_rate, gross, max_pos, max_gross, min_free)
    slip = rules.slippage_fraction(slip_bps, impact, q0, vol)
    px = rules.market_fill_price(price, direction, slip)
    q, flags = rules.entry_size(frac, eq, cash, px, lev_o, fee_rate, gross, max_pos, max_gross, min_free)
    if q <= 0.0:
        return buf, k, cash, 1
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


def simulate_args(market: MarketData, sig: BatchSignals, config: BacktestConfig) -> tuple[Any, ...]:
    """The positional arguments of `simulate` for `sig` on `market` under `config`."""
    nan = np.full(market.close.shape, np.nan)
    c, ex, risk = config.costs, config.execution, config.risk
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
    )


def run_batch(
    agent: BatchAgent, market: MarketData, config: BacktestConfig, *, run_id: str = "replay"
) -> BacktestResult:
    """Run an agent's `decide_batch` targets through the kernel; same result shape as the step loop."""
    sig = agent.decide_batch(market)
    shape = market.close.shape
    if sig.target.shape != shape:
        raise ValueError(f"{agent.name}: decide_batch returned targets of shape {sig.target.shape}, expected {shape}")
    buf, k, eq, gross, rejected, state = simulate(*simulate_args(market, sig, config))
    close_times = market.close_times()
    fills = _fills_frame(buf[:k], market, run_id, agent.name)
    return BacktestResult(
        agent=agent.name,
        equity=equity_series(eq, close_times, agent.name),
        fills=fills,
        open_positions=_open_positions(state, fills, market),
        exposure=equity_series(gross, close_times, "gross_exposure"),
        initial_cash=config.execution.initial_cash,
        meta={
            "path": "batch",
            "run_id": run_id,
            "data_hash": market.fingerprint(),
            "spec": config.spec_hash(),
            "fill_rejections": int(rejected),
        },
    )


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
