"""The leaderboard column spec: every column any board shows, with its label, unit, direction and definition.

Why one spec: the same leaderboard is computed three ways (the backtest board of `analytics.leaderboard`, the
pandas standings of `arena.standings` over a run's ledger, and the SQL board of `monitor.leaderboard_sql` that the
monitor pages read) and shown in three places (CSV/JSON exports, the notebooks, the Streamlit app). If each kept
its own list of names, labels and units, a column could be a fraction in one and percentage points in another, or
be called "Return" here and "Total return" there. Each board is therefore an ordered selection of `COLUMNS`
(`ARENA_BOARD`, `BACKTEST_BOARD`), and the app takes its headers, formats and help texts from here.

Percent or fraction. A column whose name ends in ``_pct`` holds **percentage points** (``Unit.PERCENT``: 1.5 means
1.5 %); every other share, rate or return is a **fraction** (``Unit.FRACTION``: 0.015 means 1.5 %, shown as a
percentage). `check_units` enforces that rule over the whole spec at import, so a new column cannot break it.

Direction. ``higher_is_better`` is True or False where one value is plainly better than another (a return, a
drawdown, a latency), and None for descriptive columns (how often an agent held, its leverage), which describe a
style rather than a score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd

__all__ = [
    "ARENA_BOARD",
    "BACKTEST_BOARD",
    "COLUMNS",
    "GROUPS",
    "Board",
    "Column",
    "Unit",
    "check_units",
]


class Unit(StrEnum):
    """What a column's numbers are, which fixes how they are shown."""

    TEXT = "text"  # a name or a label
    INTEGER = "integer"  # a count or a rank
    MONEY = "money"  # an amount in the accounts' quote currency (USDT in the bundled configs)
    USD = "usd"  # an amount in US dollars (the LLM provider's bill)
    PERCENT = "percent"  # percentage points: 1.5 means 1.5 %; only columns named *_pct
    FRACTION = "fraction"  # a share, rate or return as a fraction: 0.015 means 1.5 %, shown as a percentage
    RATIO = "ratio"  # a dimensionless score (Sharpe, profit factor, a stated confidence)
    MULTIPLE = "multiple"  # times a base: leverage, turnover (2.5 means 2.5x)
    HOURS = "hours"
    SECONDS = "seconds"
    FLAG = "flag"  # True or False


GROUPS: tuple[str, ...] = ("identity", "performance", "behaviour", "reliability")
"""How the app splits a board into tabs; identity columns head every tab."""


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its key in the frames, how people read it, and what it means."""

    name: str
    label: str  # the header people see, without the unit ("Account value"; the app adds "(USDT)")
    unit: Unit
    higher_is_better: bool | None  # None: descriptive, neither direction is better
    definition: str  # one sentence; the app's help text and the docs
    group: str  # one of GROUPS
    digits: int = 2  # decimals shown (of the percentage, for a fraction)

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"column {self.name!r}: group {self.group!r} is not one of {GROUPS}")


def _c(name: str, label: str, unit: Unit, better: bool | None, group: str, definition: str, digits: int = 2) -> Column:
    return Column(name, label, unit, better, definition, group, digits)


_I, _P, _B, _R = GROUPS

_ALL: tuple[Column, ...] = (
    # identity
    _c("rank", "#", Unit.INTEGER, None, _I, "Position on the board, 1 = best by the board's ranking column."),
    _c("agent", "Agent", Unit.TEXT, None, _I, "The agent's name in the run."),
    _c("kind", "Kind", Unit.TEXT, None, _I, "LLM, quant (rules) or ML agent."),
    _c("model", "Model", Unit.TEXT, None, _I, "The language model or trained model behind the agent."),
    # performance, arena
    _c("account_value", "Account value", Unit.MONEY, True, _P, "Equity at the end of the period."),
    _c("return_pct", "Return", Unit.PERCENT, True, _P, "PnL over the capital at the start of the period."),
    _c("pnl", "PnL", Unit.MONEY, True, _P, "Account value minus the capital at the start of the period."),
    _c("fees", "Fees", Unit.MONEY, False, _P, "Trading fees paid in the period."),
    _c("win_rate", "Win rate", Unit.FRACTION, True, _P, "Share of closed round trips with a positive PnL."),
    _c("biggest_win", "Biggest win", Unit.MONEY, True, _P, "Net PnL of the best closed round trip."),
    _c("biggest_loss", "Biggest loss", Unit.MONEY, True, _P, "Net PnL of the worst closed round trip."),
    _c("sharpe", "Sharpe", Unit.RATIO, True, _P, "Annualised from per-bar returns."),
    _c(
        "max_drawdown",
        "Max drawdown",
        Unit.FRACTION,
        True,
        _P,
        "Deepest fall below the running peak of the account value (<= 0).",
    ),
    _c("trades", "Trades", Unit.INTEGER, None, _P, "Closed round trips."),
    # performance, backtest
    _c("final_equity", "Final equity", Unit.MONEY, True, _P, "Equity at the last bar."),
    _c("total_return", "Total return", Unit.FRACTION, True, _P, "Final equity over the initial cash, minus 1."),
    _c("cagr", "CAGR", Unit.FRACTION, True, _P, "Compound annual growth rate of the equity."),
    _c("sortino", "Sortino", Unit.RATIO, True, _P, "Annualised mean return over the downside deviation."),
    _c("calmar", "Calmar", Unit.RATIO, True, _P, "CAGR over the depth of the max drawdown."),
    _c(
        "profit_factor",
        "Profit factor",
        Unit.RATIO,
        True,
        _P,
        "Gross profit over gross loss of the closed trades' net PnL.",
    ),
    _c("exposure", "Exposure", Unit.FRACTION, None, _P, "Share of bars with an open position."),
    _c("turnover", "Turnover", Unit.MULTIPLE, None, _P, "Notional of all fills over the mean equity."),
    _c(
        "fees_share_of_pnl",
        "Fees / gross PnL",
        Unit.FRACTION,
        False,
        _P,
        "Fees over the closed trades' PnL before fees.",
    ),
    # behaviour
    _c("hold_pct", "Hold", Unit.PERCENT, None, _B, "Share of per-coin decisions that held.", 1),
    _c("long_pct", "Long entries", Unit.PERCENT, None, _B, "Share of per-coin decisions that entered long.", 1),
    _c("short_pct", "Short entries", Unit.PERCENT, None, _B, "Share of per-coin decisions that entered short.", 1),
    _c("avg_leverage", "Avg leverage", Unit.MULTIPLE, None, _B, "Mean leverage of entry fills."),
    _c("avg_confidence", "Avg confidence", Unit.RATIO, None, _B, "Mean confidence the agent stated, 0-1 (LLMs)."),
    _c("avg_hold_hours", "Avg holding time", Unit.HOURS, None, _B, "Mean duration of closed round trips.", 1),
    _c("median_hold_hours", "Median holding time", Unit.HOURS, None, _B, "Median duration of closed trips.", 1),
    _c(
        "flip_flops",
        "Flip-flops",
        Unit.INTEGER,
        False,
        _B,
        "Entries opposite to the previous trade on the coin, made within flip_flop_bars bars (a run setting, "
        "6 by default) of its exit.",
    ),
    # reliability and cost
    _c(
        "invalid_output_rate",
        "Invalid outputs",
        Unit.FRACTION,
        False,
        _R,
        "Share of model calls whose answer failed (error, deadline, or no valid decision).",
    ),
    _c("risk_clamps", "Risk clamps", Unit.INTEGER, False, _R, "Decisions the RiskEngine reduced."),
    _c("risk_rejections", "Risk rejections", Unit.INTEGER, False, _R, "Decisions the RiskEngine refused."),
    _c("rejections", "Risk interventions", Unit.INTEGER, False, _R, "Decisions the RiskEngine refused or clamped."),
    _c("llm_cost_usd", "LLM cost", Unit.USD, False, _R, "What the model calls cost.", 4),
    _c("net_return_pct", "Net return", Unit.PERCENT, True, _R, "Return after subtracting the LLM bill."),
    _c(
        "latency_p50",
        "Latency p50",
        Unit.SECONDS,
        False,
        _R,
        "Median seconds per turn (a cached answer counts the model's own latency).",
        3,
    ),
    _c("latency_p95", "Latency p95", Unit.SECONDS, False, _R, "95th percentile of seconds per turn.", 3),
    _c("latency_p99", "Latency p99", Unit.SECONDS, False, _R, "99th percentile of seconds per turn.", 3),
    _c(
        "cutoff_overlap",
        "Cutoff overlap",
        Unit.FLAG,
        False,
        _R,
        "The model's training cutoff falls after the window start: it may know these prices.",
    ),
)

COLUMNS: Mapping[str, Column] = {c.name: c for c in _ALL}
"""Every leaderboard column by name (one definition per name, whichever board shows it)."""


def check_units(columns: Iterable[Column]) -> None:
    """Raise unless percentage points and only they are named ``*_pct`` (see the module docstring)."""
    for c in columns:
        if (c.unit is Unit.PERCENT) != c.name.endswith("_pct"):
            raise ValueError(f"column {c.name!r} is {c.unit.value}: only *_pct columns hold percentage points")


check_units(_ALL)
if len(COLUMNS) != len(_ALL):
    raise ValueError("a leaderboard column is defined twice")


@dataclass(frozen=True)
class Board:
    """An ordered selection of `COLUMNS`: a board's frame has exactly these columns, in this order."""

    name: str
    columns: tuple[Column, ...]
    rank_by: str  # the column whose descending order gives the rank

    @classmethod
    def of(cls, name: str, names: Iterable[str], rank_by: str) -> Board:
        picked = tuple(COLUMNS[n] for n in names)
        if rank_by not in {c.name for c in picked}:
            raise ValueError(f"board {name!r} ranks by {rank_by!r}, which it does not show")
        return cls(name, picked, rank_by)

    @property
    def names(self) -> list[str]:
        """The column names in order (a fresh list: callers may extend it)."""
        return [c.name for c in self.columns]

    def group(self, group: str) -> list[Column]:
        """This board's columns of one group, in board order."""
        if group not in GROUPS:
            raise KeyError(f"no column group {group!r}; groups: {', '.join(GROUPS)}")
        return [c for c in self.columns if c.group == group]

    def empty(self) -> pd.DataFrame:
        """A board with no rows and every column (what a run without agents shows)."""
        return pd.DataFrame(columns=self.names)


_ARENA_ORDER = (
    "rank", "agent", "kind", "model",
    "account_value", "return_pct", "pnl", "fees", "win_rate", "biggest_win", "biggest_loss", "sharpe",
    "max_drawdown", "trades",
    "hold_pct", "long_pct", "short_pct", "avg_leverage", "avg_confidence", "avg_hold_hours", "median_hold_hours",
    "invalid_output_rate", "risk_clamps", "risk_rejections", "flip_flops", "llm_cost_usd", "net_return_pct",
    "latency_p50", "latency_p95", "latency_p99", "cutoff_overlap",
)  # fmt: skip
_BACKTEST_ORDER = (
    "rank", "agent", "final_equity", "total_return", "cagr", "sharpe", "sortino", "calmar", "max_drawdown",
    "trades", "win_rate", "profit_factor", "exposure", "turnover", "fees_share_of_pnl", "rejections",
)  # fmt: skip

ARENA_BOARD = Board.of("arena", _ARENA_ORDER, rank_by="account_value")
"""The arena standings, LLM and quant agents side by side: `arena.standings` (pandas) and `monitor.leaderboard_sql`
(SQL) both return exactly these columns, and the tests hold their numbers to each other."""

BACKTEST_BOARD = Board.of("backtest", _BACKTEST_ORDER, rank_by="total_return")
"""The board of a replay or backtest (`analytics.leaderboard`), from each result's metrics."""
