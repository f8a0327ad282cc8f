"""Small shared pieces of the pages: time and duration text, column formats, empty and error states.

Why one module: the same number must read the same everywhere (a return is "1.22%", a drawdown "-3.55%", money
"10,122.05" in the quote currency, every time "2025-03-02 01:00 UTC"), and every page must fail the same way: a
store that cannot be read is a clear message with what to do, never a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from arena_lib.analytics.columns import Column, Unit

QUOTE = "USDT"
"""The quote currency of the arena's accounts (the sample and the default configs trade */USDT pairs)."""
MISSING = "\u2013"
"""How a table shows a value that is undefined (NaN or None): an en dash."""
EMPTY_STORE_HINT = (
    "No runs yet: run `make demo` to replay the demo arena into this store, or start one with "
    "`arena run --config configs/arena.demo.yaml`. This page fills in as soon as a run commits its first round."
)


# -- text -------------------------------------------------------------------------------------------------------
def utc(ts: Any, *, seconds: bool = False) -> str:
    """A timestamp as "2025-03-02 01:00 UTC" ("n/a" for a missing one)."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return "n/a"
    stamp = pd.Timestamp(ts)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")


def duration(delta: pd.Timedelta | float | None) -> str:
    """A duration as "3 d 4 h", "2 h 5 min", "45 s" (seconds given as a float are accepted)."""
    if delta is None or pd.isna(delta):
        return "n/a"
    seconds = float(delta.total_seconds() if isinstance(delta, pd.Timedelta) else delta)
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    days, rest = divmod(int(seconds), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        text = f"{days} d {hours} h"
    elif hours:
        text = f"{hours} h {minutes} min"
    elif minutes:
        text = f"{minutes} min {secs} s"
    else:
        text = f"{seconds:.1f} s" if seconds < 10 else f"{secs} s"
    return sign + text


def pct(value: Any, *, digits: int = 2, signed: bool = True) -> str:
    """A value already in percent as "+1.22%" ("n/a" for NaN)."""
    if value is None or pd.isna(value):
        return "n/a"
    return f"{float(value):+.{digits}f}%" if signed else f"{float(value):.{digits}f}%"


def money(value: Any, *, signed: bool = False) -> str:
    """An amount in the quote currency as "10,122.05 USDT"."""
    if value is None or pd.isna(value):
        return "n/a"
    return (f"{float(value):+,.2f}" if signed else f"{float(value):,.2f}") + f" {QUOTE}"


# -- column formats (st.column_config) ----------------------------------------------------------------------------
def money_col(label: str, help: str | None = None) -> Any:
    return st.column_config.NumberColumn(f"{label} ({QUOTE})", help=help, format="%,.2f")


def price_col(label: str, help: str | None = None) -> Any:
    """Prices keep their own precision (a DOGE price needs more decimals than BTC's), with thousands separators."""
    return st.column_config.NumberColumn(label, help=help, format="localized")


def pct_points_col(label: str, help: str | None = None, digits: int = 2) -> Any:
    """A column whose values are already percentages (1.22 means 1.22%)."""
    return st.column_config.NumberColumn(label, help=help, format=f"%.{digits}f%%")


@dataclass(frozen=True)
class FractionColumn:
    """A column of fractions that `table` shows as percentages with fixed decimals (0.0355 -> "3.55%").

    Streamlit's "percent" preset drops trailing zeros ("-0.4%" beside "-3.55%"); scaling a copy by 100 and using
    a printf format keeps every row aligned.
    """

    label: str
    help: str | None = None
    digits: int = 2

    def column(self) -> Any:
        return st.column_config.NumberColumn(self.label, help=self.help, format=f"%.{self.digits}f%%")


def fraction_col(label: str, help: str | None = None, digits: int = 2) -> FractionColumn:
    """A column of fractions shown as percentages (0.25 shows as 25.00%)."""
    return FractionColumn(label, help, digits)


def number_col(label: str, help: str | None = None, fmt: str = "%.2f") -> Any:
    return st.column_config.NumberColumn(label, help=help, format=fmt)


def int_col(label: str, help: str | None = None) -> Any:
    return st.column_config.NumberColumn(label, help=help, format="%d")


def time_col(label: str, help: str | None = None) -> Any:
    return st.column_config.DatetimeColumn(f"{label} (UTC)", help=help, format="YYYY-MM-DD HH:mm", timezone="UTC")


def text_col(label: str, help: str | None = None, width: str | None = None) -> Any:
    return st.column_config.TextColumn(label, help=help, width=width)  # type: ignore[arg-type]


def spec_col(column: Column) -> Any:
    """The table column of a leaderboard column, from its spec: header, unit, decimals and help text.

    The help text is the spec's definition, followed by which direction is better where one is.
    """
    label, digits = column.label, column.digits
    direction = {True: " Higher is better.", False: " Lower is better.", None: ""}[column.higher_is_better]
    help = column.definition + direction
    unit = column.unit
    if unit is Unit.TEXT:
        return text_col(label, help)
    if unit is Unit.INTEGER:
        return int_col(label, help)
    if unit is Unit.MONEY:
        return money_col(label, help)
    if unit is Unit.USD:
        return st.column_config.NumberColumn(f"{label} (USD)", help=help, format=f"$%,.{digits}f")
    if unit is Unit.PERCENT:
        return pct_points_col(label, help, digits)
    if unit is Unit.FRACTION:
        return fraction_col(label, help, digits)
    if unit is Unit.MULTIPLE:
        return number_col(label, help, f"%.{digits}fx")
    if unit is Unit.HOURS:
        return number_col(f"{label} (h)", help, f"%.{digits}f")
    if unit is Unit.SECONDS:
        return number_col(f"{label} (s)", help, f"%.{digits}f")
    if unit is Unit.FLAG:
        return st.column_config.CheckboxColumn(label, help=help)
    return number_col(label, help, f"%.{digits}f")  # Unit.RATIO


def table(
    frame: pd.DataFrame, config: Mapping[str, Any], *, height: int | str = "auto", key: str | None = None
) -> None:
    """A read-only table showing only the configured columns, in their order, without the index.

    An undefined value (a win rate with no closed trade, a latency with no model call) shows as an en dash, not as
    Streamlit's default "None", which reads as a broken page to a stakeholder.
    """
    columns = [c for c in config if c in frame.columns]
    shown = frame[columns].copy()
    resolved: dict[str, Any] = {}
    for name, col in config.items():
        if isinstance(col, FractionColumn):
            if name in shown.columns:
                shown[name] = pd.to_numeric(shown[name], errors="coerce") * 100.0
            resolved[name] = col.column()
        else:
            resolved[name] = col
    st.dataframe(
        shown,
        column_order=columns,
        column_config=resolved,
        hide_index=True,
        height=height,  # type: ignore[arg-type]
        placeholder=MISSING,
        key=key,
    )


# -- states ---------------------------------------------------------------------------------------------------------
def store_error(message: str) -> None:
    """The store cannot be read: say so, say what to do, stop the page (no traceback)."""
    st.error(f"**The arena store cannot be read.** {message}", icon=":material/error:")
    st.stop()


def no_runs() -> None:
    """A new install: guidance instead of empty charts; stops the page."""
    st.info(EMPTY_STORE_HINT, icon=":material/rocket_launch:")
    st.stop()
