"""Performance metrics for an equity curve and its closed trades.

Pure functions: no I/O, no clock, no global state. Inputs are plain pandas objects.

Inputs
------
``equity``
    ``pd.Series`` of float account equity in quote currency (e.g. USDT), indexed by a
    tz-aware UTC ``DatetimeIndex``, sampled at bar closes, sorted ascending, NaN-free.
    The first value is the initial capital.
``trades``
    ``pd.DataFrame``, one row per closed round trip, with the columns in
    :data:`TRADE_COLUMNS`. ``pnl`` is net: price pnl - fees - funding, in quote
    currency. ``fees`` are positive when paid. May be empty.
``fills_notional_total``
    Sum of ``|quantity * price|`` over all fills, in quote currency.
``exposure``
    ``pd.Series`` per bar: bool (in the market or not) or gross notional.

Conventions
-----------
* Per-bar simple returns: ``r_t = E_t / E_{t-1} - 1`` for ``t = 1..n-1``; a curve
  of ``n`` points gives ``n - 1`` returns. Once equity has reached zero or below
  (ruin), later returns are undefined and are set to ``0``.
* Annualisation: crypto trades 24/7, so
  ``periods_per_year = 365.25 days / bar interval``, the interval being the median
  spacing of the equity index unless ``periods_per_year`` is passed
  (hourly bars: 8766, daily bars: 365.25).
* Years covered by a curve: ``years = (n - 1) / periods_per_year`` (the number of
  return periods; the convention of empyrical's ``annual_return``).
* A ratio whose denominator is zero is NaN, never ``inf``, except where a
  function's docstring says otherwise (``profit_factor``, ``sortino``).
* Values are Python ``float``/``int``, ready for MLflow or JSON.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = [
    "DAYS_PER_YEAR",
    "SUMMARY_KEYS",
    "TRADE_COLUMNS",
    "annualised_turnover",
    "avg_trade_duration",
    "cagr",
    "calmar",
    "drawdown_series",
    "expectancy",
    "exposure_fraction",
    "fees_share_of_pnl",
    "infer_periods_per_year",
    "max_drawdown",
    "max_drawdown_duration",
    "number_of_trades",
    "profit_factor",
    "sharpe",
    "simple_returns",
    "sortino",
    "summarize",
    "total_return",
    "turnover",
    "win_rate",
]

DAYS_PER_YEAR: float = 365.25
"""Calendar days per year used for annualisation (markets open 24/7)."""

TRADE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "direction",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "quantity",
    "pnl",
    "fees",
    "funding",
)
"""Columns of the closed-trades frame."""

SUMMARY_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration_days",
    "win_rate",
    "profit_factor",
    "expectancy",
    "exposure",
    "turnover",
    "fees_share_of_pnl",
    "trades",
    "final_equity",
    "avg_trade_hours",
)
"""Keys of :func:`summarize`, in order. Stable: dashboards and MLflow rely on them."""

_ZERO_DISPERSION = 1e-12
"""A per-bar standard deviation at or below this is float noise: treated as 0."""

_RECOVERY_TOLERANCE = 1e-12
"""Relative shortfall below the peak that still counts as recovered (float noise)."""

_YEAR = pd.Timedelta(days=DAYS_PER_YEAR)


# --------------------------------------------------------------------------- helpers


def _values(equity: pd.Series) -> np.ndarray:
    """Equity as a float64 array, checked for NaN."""
    values = np.asarray(equity, dtype=np.float64)
    if np.isnan(values).any():
        msg = "equity contains NaN; pass a NaN-free equity curve"
        raise ValueError(msg)
    return values


def _ppy(equity: pd.Series, periods_per_year: float | None) -> float:
    if periods_per_year is not None:
        return float(periods_per_year)
    return infer_periods_per_year(equity.index)


def _years(equity: pd.Series, periods_per_year: float | None) -> float:
    """Years covered by the curve: ``(n - 1) / periods_per_year``; NaN if undefined."""
    ppy = _ppy(equity, periods_per_year)
    periods = len(equity) - 1
    if periods < 1 or not math.isfinite(ppy) or ppy <= 0:
        return math.nan
    return periods / ppy


def _per_bar_risk_free(risk_free: float, ppy: float) -> float:
    """Annual risk-free rate to a per-bar rate: ``(1 + rf) ** (1 / ppy) - 1``."""
    if risk_free == 0.0:
        return 0.0
    return float((1.0 + risk_free) ** (1.0 / ppy) - 1.0)


def _pnl(trades: pd.DataFrame) -> np.ndarray:
    return np.asarray(trades["pnl"], dtype=np.float64)


# ------------------------------------------------------------------ returns & growth


def infer_periods_per_year(index: pd.Index) -> float:
    """Bars per year from the median spacing of a ``DatetimeIndex``.

    ``periods_per_year = 365.25 days / median(diff(index))``. Returns NaN with fewer
    than two timestamps or a zero median spacing.

    Raises:
        TypeError: the index has two or more entries and is not a ``DatetimeIndex``.
    """
    if len(index) < 2:
        return math.nan
    if not isinstance(index, pd.DatetimeIndex):
        msg = "cannot infer the bar interval from a non-DatetimeIndex; pass periods_per_year explicitly"
        raise TypeError(msg)
    spacing = pd.Series(index).diff().dropna().median()
    if not isinstance(spacing, pd.Timedelta) or spacing <= pd.Timedelta(0):
        return math.nan
    return float(_YEAR / spacing)


def simple_returns(equity: pd.Series) -> pd.Series:
    """Per-bar simple returns ``r_t = E_t / E_{t-1} - 1`` (dimensionless).

    Indexed by the later bar, length ``n - 1``. Where ``E_{t-1} <= 0`` (the account
    is ruined) the return is undefined and is set to ``0``.
    """
    values = _values(equity)
    if len(values) < 2:
        return pd.Series([], index=equity.index[:0], dtype=np.float64)
    prev, cur = values[:-1], values[1:]
    alive = prev > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(alive, cur / np.where(alive, prev, 1.0) - 1.0, 0.0)
    return pd.Series(r, index=equity.index[1:], dtype=np.float64)


def total_return(equity: pd.Series) -> float:
    """Total return ``E_last / E_first - 1`` (fraction; 0.25 = +25%).

    NaN for an empty curve or a non-positive initial capital; 0 for a single bar.
    """
    values = _values(equity)
    if len(values) == 0 or values[0] <= 0:
        return math.nan
    return float(values[-1] / values[0] - 1.0)


def cagr(equity: pd.Series, periods_per_year: float | None = None) -> float:
    """Compound annual growth rate (fraction per year).

    ``CAGR = (E_last / E_first) ** (1 / years) - 1`` with
    ``years = (n - 1) / periods_per_year``. If the curve ends at or below zero the
    CAGR is ``-1`` (total loss). NaN when fewer than two points or the initial
    capital is not positive. Very short, very profitable curves can give ``inf``.
    """
    values = _values(equity)
    years = _years(equity, periods_per_year)
    if math.isnan(years) or values[0] <= 0:
        return math.nan
    growth = values[-1] / values[0]
    if growth <= 0:
        return -1.0
    with np.errstate(over="ignore"):
        return float(np.power(np.float64(growth), 1.0 / years) - 1.0)


# ------------------------------------------------------------------ risk-adjusted


def sharpe(
    equity: pd.Series,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
) -> float:
    """Annualised Sharpe ratio of per-bar simple returns.

    ``Sharpe = mean(r - rf_bar) / std(r - rf_bar, ddof=1) * sqrt(periods_per_year)``
    where ``r`` are :func:`simple_returns` and ``risk_free`` is an annual rate
    converted per bar as ``rf_bar = (1 + risk_free) ** (1 / periods_per_year) - 1``
    (0 by default). Dimensionless, per sqrt(year).

    NaN when there are fewer than two returns or the standard deviation is zero
    (at most 1e-12 per bar, i.e. float noise): a flat curve has no Sharpe, not inf.
    """
    ppy = _ppy(equity, periods_per_year)
    r = simple_returns(equity).to_numpy()
    if len(r) < 2 or not math.isfinite(ppy) or ppy <= 0:
        return math.nan
    excess = r - _per_bar_risk_free(risk_free, ppy)
    sd = float(np.std(excess, ddof=1))
    if not math.isfinite(sd) or sd <= _ZERO_DISPERSION:
        return math.nan
    return float(np.mean(excess) / sd * math.sqrt(ppy))


def sortino(
    equity: pd.Series,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
) -> float:
    """Annualised Sortino ratio (empyrical / quantstats convention).

    ``Sortino = mean(x) / DD * sqrt(periods_per_year)``, ``x = r - rf_bar`` as in
    :func:`sharpe`, with downside deviation ``DD = sqrt(mean(min(x, 0) ** 2))``
    taken over *all* periods (positive periods count as zero), not only the
    losing ones.

    NaN with fewer than two returns, or when ``DD`` is zero and the mean is not
    positive (a flat curve). ``inf`` when ``DD`` is zero and the mean is positive
    (no losing bar at all), as empyrical does.
    """
    ppy = _ppy(equity, periods_per_year)
    r = simple_returns(equity).to_numpy()
    if len(r) < 2 or not math.isfinite(ppy) or ppy <= 0:
        return math.nan
    excess = r - _per_bar_risk_free(risk_free, ppy)
    mean = float(np.mean(excess))
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0.0) ** 2)))
    if downside <= _ZERO_DISPERSION:
        return math.inf if mean > 0 else math.nan
    return float(mean / downside * math.sqrt(ppy))


# ------------------------------------------------------------------ drawdowns


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Drawdown per bar ``DD_t = E_t / max(E_0..E_t) - 1`` (fraction, <= 0).

    The running peak includes the initial capital. Values are clipped to
    ``[-1, 0]``: equity at or below zero is a drawdown of ``-1`` (total loss).
    NaN while the running peak is not positive.
    """
    values = _values(equity)
    peak = np.maximum.accumulate(values) if len(values) else values
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, values / np.where(peak > 0, peak, 1.0) - 1.0, np.nan)
    return pd.Series(np.clip(dd, -1.0, 0.0), index=equity.index, dtype=np.float64)


def max_drawdown(equity: pd.Series) -> float:
    """Maximum drawdown ``min_t(E_t / max(E_0..E_t) - 1)``, a negative fraction.

    ``-0.2`` means the curve fell 20% below its running peak at worst; ``0.0`` means it
    never fell; always in ``[-1, 0]``. NaN for an empty curve or a non-positive
    initial capital.
    """
    dd = drawdown_series(equity).to_numpy()
    if len(dd) == 0 or np.isnan(dd).all():
        return math.nan
    return float(np.nanmin(dd))


def max_drawdown_duration(equity: pd.Series) -> pd.Timedelta | None:
    """Longest time under water, as a ``pd.Timedelta``.

    A spell under water starts at the timestamp of the peak (the last bar with
    ``E_t == max(E_0..E_t)`` before equity falls below it) and ends at the first
    bar with ``E_t >= peak`` (recovery), or at the last bar if equity has not
    recovered by the end. A shortfall of at most 1e-12 of the peak is float noise
    and counts as recovered. ``Timedelta(0)`` if the curve never falls below its
    peak; ``None`` for an empty curve.

    Raises:
        TypeError: the curve has two or more points and no ``DatetimeIndex``.
    """
    values = _values(equity)
    n = len(values)
    if n == 0:
        return None
    if n == 1:
        return pd.Timedelta(0)
    if not isinstance(equity.index, pd.DatetimeIndex):
        msg = "max_drawdown_duration needs a DatetimeIndex on equity"
        raise TypeError(msg)
    peak = np.maximum.accumulate(values)
    under = values < peak - _RECOVERY_TOLERANCE * np.abs(peak)
    # Spell boundaries: +1 where a spell starts, -1 one past where it ends.
    edges = np.diff(np.concatenate(([0], under.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)  # first bar under water (>= 1: bar 0 is a peak)
    stops = np.flatnonzero(edges == -1)  # first bar after the spell: recovery, or n
    if len(starts) == 0:
        return pd.Timedelta(0)
    times = equity.index
    longest = pd.Timedelta(0)
    for start, stop in zip(starts, stops, strict=True):
        end = times[min(int(stop), n - 1)]
        longest = max(longest, pd.Timedelta(end - times[int(start) - 1]))
    return longest


def calmar(equity: pd.Series, periods_per_year: float | None = None) -> float:
    """Calmar ratio ``CAGR / |max drawdown|`` (dimensionless).

    Uses the whole curve (not a trailing 36 months). NaN when there is no drawdown
    (``max_drawdown == 0``) or either part is undefined, as empyrical does.
    """
    mdd = max_drawdown(equity)
    growth = cagr(equity, periods_per_year)
    if math.isnan(mdd) or mdd >= 0 or math.isnan(growth):
        return math.nan
    ratio = growth / abs(mdd)
    return ratio if math.isfinite(ratio) else math.nan


# ------------------------------------------------------------------ trades


def number_of_trades(trades: pd.DataFrame) -> int:
    """Count the closed round trips (rows of ``trades``)."""
    return len(trades)


def win_rate(trades: pd.DataFrame) -> float:
    """Fraction of trades with net ``pnl > 0`` (break-even trades are not wins).

    ``win_rate = #(pnl > 0) / #trades``, in ``[0, 1]``; NaN when there are no trades.
    """
    if len(trades) == 0:
        return math.nan
    return float(np.mean(_pnl(trades) > 0))


def profit_factor(trades: pd.DataFrame) -> float:
    """Gross profit over gross loss of net trade pnl (dimensionless).

    ``PF = sum(pnl[pnl > 0]) / |sum(pnl[pnl < 0])|``. ``inf`` when there is profit
    and no losing trade; NaN when there are no trades or neither profit nor loss.
    """
    if len(trades) == 0:
        return math.nan
    pnl = _pnl(trades)
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    if gross_loss > 0:
        return gross_profit / gross_loss
    return math.inf if gross_profit > 0 else math.nan


def expectancy(trades: pd.DataFrame) -> float:
    """Mean net pnl per trade, ``sum(pnl) / #trades``, in quote currency.

    NaN when there are no trades.
    """
    if len(trades) == 0:
        return math.nan
    return float(np.mean(_pnl(trades)))


def avg_trade_duration(trades: pd.DataFrame) -> pd.Timedelta | None:
    """Mean holding time ``mean(exit_time - entry_time)``; ``None`` with no trades."""
    if len(trades) == 0:
        return None
    held = pd.to_datetime(trades["exit_time"], utc=True) - pd.to_datetime(trades["entry_time"], utc=True)
    mean = held.mean()
    return mean if isinstance(mean, pd.Timedelta) else None


def fees_share_of_pnl(trades: pd.DataFrame) -> float:
    """Share of the gross pnl that fees consumed (dimensionless).

    ``fees_share = sum(fees) / |sum(pnl) + sum(fees)|``: the denominator is the pnl
    before fees (price pnl - funding), since ``pnl`` is net of fees and funding.
    ``0.5`` means fees ate half of the pre-fee result (or, when that result is a
    loss, added half of it again). NaN when there are no trades or the denominator
    is zero.
    """
    if len(trades) == 0:
        return math.nan
    fees = float(np.asarray(trades["fees"], dtype=np.float64).sum())
    gross = float(_pnl(trades).sum()) + fees
    if gross == 0:
        return math.nan
    return fees / abs(gross)


# ------------------------------------------------------------------ activity


def exposure_fraction(exposure: pd.Series | None) -> float:
    """Fraction of bars with a position, in ``[0, 1]``.

    ``exposure = #(bars in the market) / #bars``. A bar is in the market when the
    series is ``True`` (bool) or its gross notional is non-zero (numeric); NaN
    counts as flat. NaN when ``exposure`` is ``None`` or empty.
    """
    if exposure is None or len(exposure) == 0:
        return math.nan
    values = np.asarray(exposure.fillna(0), dtype=np.float64)
    return float(np.mean(values != 0))


def turnover(fills_notional_total: float, equity: pd.Series) -> float:
    """Turnover over the whole curve: ``fills notional / mean(equity)``.

    Dimensionless (times the average capital traded). ``2.0`` means fills worth twice
    the average equity went through. NaN for an empty curve or non-positive mean
    equity.
    """
    values = _values(equity)
    if len(values) == 0:
        return math.nan
    mean_equity = float(values.mean())
    if mean_equity <= 0:
        return math.nan
    return float(fills_notional_total) / mean_equity


def annualised_turnover(
    fills_notional_total: float,
    equity: pd.Series,
    periods_per_year: float | None = None,
) -> float:
    """Turnover per year: ``turnover / years``, ``years = (n - 1) / periods_per_year``.

    NaN when :func:`turnover` or the time span is undefined (fewer than two points).
    """
    years = _years(equity, periods_per_year)
    total = turnover(fills_notional_total, equity)
    if math.isnan(years) or math.isnan(total):
        return math.nan
    return total / years


# ------------------------------------------------------------------ summary


def summarize(
    equity: pd.Series,
    trades: pd.DataFrame,
    fills_notional_total: float = 0.0,
    exposure: pd.Series | None = None,
    periods_per_year: float | None = None,
) -> dict[str, float | int | str]:
    """All metrics in one flat dict, keyed by :data:`SUMMARY_KEYS` in that order.

    Units: returns and drawdowns are fractions; ``cagr`` is per year; ``sharpe``,
    ``sortino`` and ``calmar`` are annualised with ``periods_per_year`` (inferred from
    the index if ``None``); ``max_drawdown_duration_days`` is in days;
    ``expectancy`` and ``final_equity`` are in quote currency; ``turnover`` is
    fills notional / mean equity over the whole curve (not annualised; see
    :func:`annualised_turnover`); ``avg_trade_hours`` is in hours; ``trades`` is
    an int. Undefined values are NaN (see each function). Never raises on a flat
    curve, a single bar, no trades or equity that hits zero.
    """
    ppy = _ppy(equity, periods_per_year)
    values = _values(equity)
    dd_duration = max_drawdown_duration(equity)
    held = avg_trade_duration(trades)
    day = pd.Timedelta(days=1)
    hour = pd.Timedelta(hours=1)
    summary: dict[str, float | int | str] = {
        "total_return": total_return(equity),
        "cagr": cagr(equity, ppy),
        "sharpe": sharpe(equity, ppy),
        "sortino": sortino(equity, ppy),
        "calmar": calmar(equity, ppy),
        "max_drawdown": max_drawdown(equity),
        "max_drawdown_duration_days": (math.nan if dd_duration is None else float(dd_duration / day)),
        "win_rate": win_rate(trades),
        "profit_factor": profit_factor(trades),
        "expectancy": expectancy(trades),
        "exposure": exposure_fraction(exposure),
        "turnover": turnover(fills_notional_total, equity),
        "fees_share_of_pnl": fees_share_of_pnl(trades),
        "trades": number_of_trades(trades),
        "final_equity": float(values[-1]) if len(values) else math.nan,
        "avg_trade_hours": math.nan if held is None else float(held / hour),
    }
    return summary
