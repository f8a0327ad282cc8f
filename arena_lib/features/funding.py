"""Perpetual-futures funding features: the last settled rate, its recent mean and sum, and how unusual it is.

Why: funding is what longs pay shorts (or the reverse) every 8 hours on perpetual swaps. Its level measures how
crowded the leveraged long side is, and extremes tend to precede squeezes.

Point in time: a rate is known only once it *settles*. The funding series (``load_sample_funding``'s format: rates
as fractions per event, indexed by settlement time, UTC) is summarized per settlement event first (rolling over the
last ``k`` events), and each bar then sees the summary as of the last event settled at or before the bar's close,
as ``MarketSnapshot.funding_rate`` does. A rate settling at 08:00 is visible from the 07:00 hourly bar (which
closes at 08:00) on. Before the first settlement, and for a symbol with an empty funding series, values are NaN.

Lookbacks assume Binance's 8-hour schedule: ``k`` events need ``8 * k`` hourly bars of history (with funding
history covering the same span).
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from arena_lib.data.resample import timeframe_to_ns
from arena_lib.features.registry import FeatureInput, FloatArray, register
from arena_lib.features.returns import rolling_fraction, rolling_mean, rolling_sum, rolling_zscore

SETTLEMENT_HOURS = 8
EVENTS_PER_YEAR = 3 * 365
_FUNDING = frozenset({"funding"})


def funding_events(inp: FeatureInput) -> tuple[np.ndarray, FloatArray]:
    """(settlement times in epoch ns, rates) of the input's funding series, validated; a clear error when absent."""
    if inp.funding is None:
        raise ValueError("funding features need the funding series: pass funding=load_sample_funding(symbol)")
    series = inp.funding

    def validate() -> tuple[np.ndarray, FloatArray]:
        if not isinstance(series.index, pd.DatetimeIndex) or series.index.tz is None:
            raise ValueError("the funding series must have a tz-aware (UTC) DatetimeIndex of settlement times")
        times = series.index.tz_convert("UTC").as_unit("ns").asi8
        if len(times) > 1 and not (np.diff(times) > 0).all():
            raise ValueError("funding settlement times must be sorted and unique")
        return times, series.to_numpy(dtype=np.float64)

    result: tuple[np.ndarray, FloatArray] = inp.cached("funding_events", validate)
    return result


def as_of_bar_close(inp: FeatureInput, event_values: FloatArray) -> FloatArray:
    """Per-event values on the input bars: each bar sees the last event settled at or before its close."""
    times, _ = funding_events(inp)
    out = np.full(len(inp), np.nan)
    if len(times) == 0:
        return out
    row_close = inp.index.as_unit("ns").asi8 + timeframe_to_ns(inp.timeframe)
    position = np.searchsorted(times, row_close, side="right") - 1
    seen = position >= 0
    out[seen] = event_values[position[seen]]
    return out


def _rates(inp: FeatureInput) -> FloatArray:
    return funding_events(inp)[1]


def _last(inp: FeatureInput) -> FloatArray:
    return as_of_bar_close(inp, _rates(inp))


def _mean(inp: FeatureInput, k: int) -> FloatArray:
    return as_of_bar_close(inp, rolling_mean(_rates(inp), k))


def _sum(inp: FeatureInput, k: int) -> FloatArray:
    return as_of_bar_close(inp, rolling_sum(_rates(inp), k))


def _zscore(inp: FeatureInput, k: int) -> FloatArray:
    return as_of_bar_close(inp, rolling_zscore(_rates(inp), k))


def _change(inp: FeatureInput) -> FloatArray:
    rates = _rates(inp)
    change = np.full(len(rates), np.nan)
    change[1:] = np.diff(rates)
    return as_of_bar_close(inp, change)


def _annualized(inp: FeatureInput, k: int) -> FloatArray:
    return as_of_bar_close(inp, rolling_mean(_rates(inp), k) * EVENTS_PER_YEAR)


def _positive_fraction(inp: FeatureInput, k: int) -> FloatArray:
    return as_of_bar_close(inp, rolling_fraction(_rates(inp), k))


def _age_hours(inp: FeatureInput) -> FloatArray:
    """Hours from the last known settlement to the bar's close (grows when funding data stops)."""
    times, _ = funding_events(inp)
    row_close = inp.index.as_unit("ns").asi8 + timeframe_to_ns(inp.timeframe)
    last = as_of_bar_close(inp, times.astype(np.float64))
    return (row_close - last) / 3.6e12


def funding_lookback(events: int) -> int:
    """Hourly bars spanned by ``events`` settlements on an 8-hour schedule."""
    return SETTLEMENT_HOURS * events


register(
    "funding_last",
    lookback=funding_lookback(1),
    group="funding",
    needs=_FUNDING,
    description="last settled funding rate (fraction per 8h event)",
)(_last)
register(
    "funding_change_1",
    lookback=funding_lookback(2),
    group="funding",
    needs=_FUNDING,
    description="change of the funding rate at the last settlement",
)(_change)
for _k, _span in ((3, "1 day"), (21, "7 days")):
    register(
        f"funding_mean_{_k}",
        lookback=funding_lookback(_k),
        group="funding",
        needs=_FUNDING,
        description=f"mean of the last {_k} settled funding rates ({_span})",
    )(partial(_mean, k=_k))
for _k, _span in ((21, "7 days"), (90, "30 days")):
    register(
        f"funding_sum_{_k}",
        lookback=funding_lookback(_k),
        group="funding",
        needs=_FUNDING,
        description=f"cumulative funding over the last {_k} settlements ({_span}): the carry paid by a long",
    )(partial(_sum, k=_k))
register(
    "funding_z_90",
    lookback=funding_lookback(90),
    group="funding",
    needs=_FUNDING,
    description="z-score of the last settled rate against the last 90 settlements (30 days)",
)(partial(_zscore, k=90))
register(
    "funding_apr_21",
    lookback=funding_lookback(21),
    group="funding",
    needs=_FUNDING,
    description="7-day mean funding rate annualized (x 3 x 365)",
)(partial(_annualized, k=21))
register(
    "funding_pos_frac_21",
    lookback=funding_lookback(21),
    group="funding",
    needs=_FUNDING,
    description="fraction of the last 21 settlements with a positive rate",
)(partial(_positive_fraction, k=21))
register(
    "funding_age_h",
    lookback=funding_lookback(1),
    group="funding",
    needs=_FUNDING,
    description="hours from the last known settlement to the bar's close (stale-data indicator)",
)(_age_hours)
