"""The twin's equity gap split into parts: pure functions of both sides' fills (no I/O, no simulation).

`fill_prices` prices each fill against its decision's reference and arrival prices; `decompose` splits one
agent's gap into fees, slippage, funding, latency, one-sided fills and a residual. The formulas are written out
in `arena_lib.arena.twin`'s module docstring; `twin.py` runs the twin and reads the ledger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from arena_lib.core.types import FillKind

PARTS = ("fees", "slippage", "funding", "latency", "one_sided", "residual")
FILL_COLUMNS = [
    "agent",
    "fill_id",
    "side_of",  # real | twin
    "matched",
    "round_no",
    "symbol",
    "ts",
    "side",
    "kind",
    "quantity",
    "reference_price",
    "arrival_price",
    "price",
    "fee",
    "slippage_bps",
    "slippage_usd",
    "latency_usd",
    "execution_usd",
]
SOURCE_RECORDED = "recorded decisions"


@dataclass(frozen=True)
class AgentGap:
    """One agent's equity at the end of the run and of its twin, the gap and its parts (they add up to `gap`)."""

    agent: str
    source: str  # where the twin's decisions came from
    real_equity: float
    twin_equity: float
    gap: float
    fees: float
    slippage: float
    funding: float
    latency: float
    one_sided: float
    residual: float
    real_fills: int
    twin_fills: int
    one_sided_fills: int

    def parts(self) -> dict[str, float]:
        return {p: float(getattr(self, p)) for p in PARTS}


# -- the decomposition (pure) --------------------------------------------------------------------------------------
def fill_prices(
    fills: pd.DataFrame, orders: pd.DataFrame, opens: Mapping[tuple[str, int], float], bar_ns: int
) -> pd.DataFrame:
    """`fills` (one agent's, one side's, in order) with reference, arrival and slippage columns (see the module)."""
    by_order = {r["order_id"]: r for r in records(orders)}
    levels: dict[str, tuple[float | None, float | None]] = {}  # symbol -> (stop, take) of the open position
    rows = []
    for f in records(fills):
        s = 1.0 if f["side"] == "buy" else -1.0
        q, p, ts, sym = float(f["quantity"]), float(f["price"]), int(f["ts"]), str(f["symbol"])
        o = by_order.get(f["order_id"])
        kind = f["kind"]
        if o is not None:
            ref = float(o["reference_price"])
            if int(f["round_no"]) == int(o["round_no"]):  # filled on the decision bar: at its close
                arrival = ref
            else:
                start = ts - (ts % bar_ns) if bar_ns else ts
                arrival = opens.get((sym, ts), opens.get((sym, start), ref))
            if kind == FillKind.ENTRY.value:
                levels[sym] = (optional_float(o["stop_loss"]), optional_float(o["take_profit"]))
        else:
            stop, take = levels.get(sym, (None, None))
            level = stop if kind == FillKind.STOP_LOSS.value else take if kind == FillKind.TAKE_PROFIT.value else None
            ref = arrival = p if level is None else float(level)
        rows.append(
            {
                "reference_price": ref,
                "arrival_price": arrival,
                "slippage_bps": s * (p / ref - 1.0) * 1e4 if ref else math.nan,
                "slippage_usd": s * q * (p - ref),
                "latency_usd": s * q * (arrival - ref),
                "execution_usd": s * q * (p - arrival),
            }
        )
    extra = pd.DataFrame(rows, index=fills.index, columns=list(rows[0]) if rows else _PRICE_COLUMNS)
    return pd.concat([fills, extra], axis=1)


_PRICE_COLUMNS = ["reference_price", "arrival_price", "slippage_bps", "slippage_usd", "latency_usd", "execution_usd"]


def optional_float(x: Any) -> float | None:
    """None for a missing (None or NaN) ledger value, else the float."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def decompose(
    agent: str,
    real: pd.DataFrame,
    twin: pd.DataFrame,
    *,
    real_equity: float,
    twin_equity: float,
    real_funding: float,
    twin_funding: float,
    marks: Mapping[str, float],
    source: str = SOURCE_RECORDED,
) -> AgentGap:
    """One agent's gap and its parts from both sides' priced fills (`fill_prices`); the formulas are the module's."""
    r = real.set_index("fill_id", drop=False)
    w = twin.set_index("fill_id", drop=False)
    both = r.index.intersection(w.index)
    fees = latency = slippage = 0.0
    for fid in both:
        a, b = r.loc[fid], w.loc[fid]
        s = 1.0 if a["side"] == "buy" else -1.0
        q = float(a["quantity"])
        fees += float(b["fee"]) - float(a["fee"])
        latency -= s * q * (float(a["arrival_price"]) - float(b["arrival_price"]))
        slippage -= (
            s * q * ((float(a["price"]) - float(a["arrival_price"])) - (float(b["price"]) - float(b["arrival_price"])))
        )

    def alone(frame: pd.DataFrame, keep: pd.Index) -> float:
        total = 0.0
        for f in records(frame[~frame.index.isin(keep)]):
            s = 1.0 if f["side"] == "buy" else -1.0
            p = float(f["price"])
            total += s * float(f["quantity"]) * (marks.get(str(f["symbol"]), p) - p) - float(f["fee"])
        return total

    one_sided = alone(r, both) - alone(w, both)
    funding = twin_funding - real_funding
    gap = real_equity - twin_equity
    named = fees + slippage + funding + latency + one_sided
    return AgentGap(
        agent=agent,
        source=source,
        real_equity=real_equity,
        twin_equity=twin_equity,
        gap=gap,
        fees=fees,
        slippage=slippage,
        funding=funding,
        latency=latency,
        one_sided=one_sided,
        residual=gap - named,
        real_fills=len(r),
        twin_fills=len(w),
        one_sided_fills=len(r) + len(w) - 2 * len(both),
    )


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts with string keys."""
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
