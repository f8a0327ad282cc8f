"""Volume features: activity relative to its own history, on-balance volume, money flow and VWAP distance.

Why everything is relative: raw volume is in base-asset units (BTC vs DOGE differ by 10^6) and trends with
adoption, so volume enters as z-scores of log volume, ratios of moving averages, or fractions of the window's own
volume. On-balance volume (OBV) is a cumulative sum whose level depends on where the history starts; only
start-free transforms of it are exposed (its z-score within a window, and its change over a window divided by the
volume traded in that window).

A bar with zero volume has no log volume: it reads NaN, and so does every window holding it.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import talib

from arena_lib.features.registry import FeatureInput, FloatArray, register
from arena_lib.features.returns import log_returns, rolling_cov_var, rolling_mean, rolling_sum, rolling_zscore, safe_div

VOLUME_Z_WINDOWS: tuple[int, ...] = (24, 168)


def _log_volume(inp: FeatureInput) -> FloatArray:
    def compute() -> FloatArray:
        v = inp.volume
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log(np.where(v > 0, v, 1.0)), np.nan)

    result: FloatArray = inp.cached("log_volume", compute)
    return result


def signed_volume(inp: FeatureInput) -> FloatArray:
    """Volume signed by the direction of the close-to-close move (0 when unchanged; NaN on the first bar)."""

    def compute() -> FloatArray:
        out = np.full(len(inp), np.nan)
        out[1:] = np.sign(np.diff(inp.close)) * inp.volume[1:]
        return out

    result: FloatArray = inp.cached("signed_volume", compute)
    return result


def on_balance_volume(inp: FeatureInput) -> FloatArray:
    """OBV starting at 0 on the first bar of the input: only differences within a window are meaningful."""

    def compute() -> FloatArray:
        increments = signed_volume(inp).copy()
        increments[:1] = 0.0
        out: FloatArray = np.cumsum(increments)
        return out

    result: FloatArray = inp.cached("obv", compute)
    return result


def _volume_z(inp: FeatureInput, n: int) -> FloatArray:
    return rolling_zscore(_log_volume(inp), n)


def _volume_ratio(inp: FeatureInput, n: int) -> FloatArray:
    return safe_div(inp.volume, rolling_mean(inp.volume, n))


def _volume_trend(inp: FeatureInput, short: int, long: int) -> FloatArray:
    return safe_div(rolling_mean(inp.volume, short), rolling_mean(inp.volume, long))


def _obv_z(inp: FeatureInput, n: int) -> FloatArray:
    return rolling_zscore(on_balance_volume(inp), n)


def _obv_flow(inp: FeatureInput, n: int) -> FloatArray:
    """OBV change over ``n`` bars divided by the volume of those bars: net up-volume fraction, -1..1."""
    return safe_div(rolling_sum(signed_volume(inp), n), rolling_sum(inp.volume, n))


def _chaikin_money_flow(inp: FeatureInput, n: int) -> FloatArray:
    """CMF: volume-weighted close location ``((c - l) - (h - c)) / (h - l)`` over ``n`` bars, -1..1."""
    h, lo, c = inp.high, inp.low, inp.close
    multiplier = np.where(h > lo, safe_div((c - lo) - (h - c), h - lo), 0.0)
    return safe_div(rolling_sum(multiplier * inp.volume, n), rolling_sum(inp.volume, n))


def _mfi(inp: FeatureInput, n: int) -> FloatArray:
    out: FloatArray = talib.MFI(inp.high, inp.low, inp.close, inp.volume, timeperiod=n)
    return out


def _vwap_dist(inp: FeatureInput, n: int) -> FloatArray:
    """close / VWAP - 1, with VWAP the volume-weighted typical price ``(h + l + c) / 3`` of the last ``n`` bars."""
    typical = (inp.high + inp.low + inp.close) / 3.0
    vwap = safe_div(rolling_sum(typical * inp.volume, n), rolling_sum(inp.volume, n))
    return inp.close / vwap - 1.0


def _log_dollar_volume(inp: FeatureInput, n: int) -> FloatArray:
    """log of the mean quote-currency volume (close * volume) per bar over ``n`` bars: a liquidity level."""
    mean = rolling_mean(inp.close * inp.volume, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(mean > 0, np.log(np.where(mean > 0, mean, 1.0)), np.nan)


def _amihud(inp: FeatureInput, n: int) -> FloatArray:
    """Amihud illiquidity: mean of |return| per million of quote volume over ``n`` bars."""
    dollar = inp.close * inp.volume / 1e6
    return rolling_mean(safe_div(np.abs(log_returns(inp, 1)), dollar), n)


def _volume_absret_corr(inp: FeatureInput, n: int) -> FloatArray:
    """Correlation of log volume with the absolute one-bar return over ``n`` bars."""
    cov, var_v, var_r = rolling_cov_var(_log_volume(inp), np.abs(log_returns(inp, 1)), n)
    return safe_div(cov, np.sqrt(var_v * var_r))


for _n in VOLUME_Z_WINDOWS:
    register(
        f"volume_z_{_n}",
        lookback=_n - 1,
        group="volume",
        description=f"z-score of log volume against the last {_n} bars",
    )(partial(_volume_z, n=_n))
register("volume_ratio_24", lookback=23, group="volume", description="volume / its 24-bar mean")(
    partial(_volume_ratio, n=24)
)
register("volume_trend_24_168", lookback=167, group="volume", description="24-bar mean volume / 168-bar mean volume")(
    partial(_volume_trend, short=24, long=168)
)
register(
    "obv_z_168",
    lookback=167,
    group="volume",
    description="z-score of on-balance volume within the last 168 bars (start-free)",
)(partial(_obv_z, n=168))
for _n in (24, 168):
    register(
        f"obv_flow_{_n}",
        lookback=_n,
        group="volume",
        description=f"OBV change over {_n} bars / volume of those bars: net up-volume fraction, -1..1",
    )(partial(_obv_flow, n=_n))
register("cmf_20", lookback=19, group="volume", description="Chaikin money flow(20), -1..1")(
    partial(_chaikin_money_flow, n=20)
)
register("mfi_14", lookback=14, group="volume", description="money flow index(14), 0-100")(partial(_mfi, n=14))
for _n in (24, 168):
    register(
        f"vwap_dist_{_n}",
        lookback=_n - 1,
        group="volume",
        description=f"close / rolling {_n}-bar VWAP - 1",
    )(partial(_vwap_dist, n=_n))
register(
    "log_dollar_volume_24",
    lookback=23,
    group="volume",
    description="log of the mean quote volume (close * volume) per bar over 24 bars",
)(partial(_log_dollar_volume, n=24))
register(
    "amihud_168",
    lookback=168,
    group="volume",
    description="Amihud illiquidity: mean |1-bar log return| per million quote volume over 168 bars",
)(partial(_amihud, n=168))
register(
    "volume_absret_corr_168",
    lookback=168,
    group="volume",
    description="correlation of log volume with |1-bar log return| over 168 bars",
)(partial(_volume_absret_corr, n=168))
