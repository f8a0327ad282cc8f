"""Cross-asset features: each symbol's co-movement with BTC, its return relative to BTC, and BTC's own state.

Why: in crypto most of an altcoin's move is BTC's move. Beta and correlation to BTC say how much, the relative
return and the idiosyncratic volatility say what is left, and BTC's recent return and volatility are context that
every symbol's model may use.

These features need the BTC bars (``btc=`` in ``compute_features``). BTC's returns are computed on BTC's own bars
and matched to the symbol's bars by timestamp: a bar that BTC lacks reads NaN, and so does any window holding
it (nothing is filled). Every statistic uses one-bar log returns and sample (``ddof=1``) moments over the last
``n`` bars. For BTC against itself, beta and correlation are exactly 1.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from arena_lib.features.registry import FeatureInput, FloatArray, register
from arena_lib.features.returns import log_returns, rolling_cov_var, rolling_std, safe_div

BETA_WINDOWS: tuple[int, ...] = (72, 168, 720)


def btc_input(inp: FeatureInput) -> FeatureInput:
    """BTC's bars as a ``FeatureInput`` (cached); a clear error when they were not supplied."""
    if inp.btc is None:
        raise ValueError("cross-asset features need the BTC bars: pass btc=<BTC/USDT OHLCV frame>")
    btc = inp.btc
    result: FeatureInput = inp.cached("btc_input", lambda: FeatureInput(btc, timeframe=inp.timeframe))
    return result


def on_symbol_bars(inp: FeatureInput, values: FloatArray, source: FeatureInput) -> FloatArray:
    """``values`` indexed like ``source``'s bars, placed on ``inp``'s bars by exact timestamp (NaN where absent)."""
    position = source.index.get_indexer(inp.index)
    out = np.full(len(inp), np.nan)
    found = position >= 0
    out[found] = values[position[found]]
    return out


def btc_log_returns(inp: FeatureInput, k: int = 1) -> FloatArray:
    """BTC's ``k``-bar log return on the symbol's bars (cached)."""

    def compute() -> FloatArray:
        btc = btc_input(inp)
        return on_symbol_bars(inp, log_returns(btc, k), btc)

    result: FloatArray = inp.cached(f"btc_logret_{k}", compute)
    return result


def _comoments(inp: FeatureInput, n: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(cov(r, r_btc), var(r), var(r_btc)) of one-bar log returns over ``n`` bars (cached)."""
    result: tuple[FloatArray, FloatArray, FloatArray] = inp.cached(
        f"btc_comoments_{n}", lambda: rolling_cov_var(log_returns(inp, 1), btc_log_returns(inp, 1), n)
    )
    return result


def _beta(inp: FeatureInput, n: int) -> FloatArray:
    cov, _, var_btc = _comoments(inp, n)
    return safe_div(cov, var_btc)


def _corr(inp: FeatureInput, n: int) -> FloatArray:
    cov, var_sym, var_btc = _comoments(inp, n)
    return safe_div(cov, np.sqrt(var_sym * var_btc))


def _idio_vol(inp: FeatureInput, n: int) -> FloatArray:
    """Std of the residual of an OLS regression of the symbol's returns on BTC's, within the window."""
    residual = close_to_close_var(inp, n) * (1.0 - _corr(inp, n) ** 2)  # var(r) - cov^2 / var(r_btc)
    return np.sqrt(np.where(residual < 0, 0.0, residual))


def close_to_close_var(inp: FeatureInput, n: int) -> FloatArray:
    """The symbol's return variance over the window (from the same co-moments as beta and correlation)."""
    return _comoments(inp, n)[1]


def _relative_return(inp: FeatureInput, n: int) -> FloatArray:
    return log_returns(inp, n) - btc_log_returns(inp, n)


def _btc_return(inp: FeatureInput, n: int) -> FloatArray:
    return np.expm1(btc_log_returns(inp, n))


def _btc_vol(inp: FeatureInput, n: int) -> FloatArray:
    btc = btc_input(inp)
    return on_symbol_bars(inp, rolling_std(log_returns(btc, 1), n), btc)


_BTC = frozenset({"btc"})
for _n in BETA_WINDOWS:
    register(
        f"beta_btc_{_n}",
        lookback=_n,
        group="cross_asset",
        needs=_BTC,
        description=f"beta of one-bar log returns to BTC's over {_n} bars",
    )(partial(_beta, n=_n))
    register(
        f"corr_btc_{_n}",
        lookback=_n,
        group="cross_asset",
        needs=_BTC,
        description=f"correlation of one-bar log returns with BTC's over {_n} bars",
    )(partial(_corr, n=_n))
register(
    "idio_vol_168",
    lookback=168,
    group="cross_asset",
    needs=_BTC,
    description="idiosyncratic volatility: residual std per bar after regressing on BTC returns over 168 bars",
)(partial(_idio_vol, n=168))
for _n in (24, 168):
    register(
        f"rel_ret_btc_{_n}",
        lookback=_n,
        group="cross_asset",
        needs=_BTC,
        description=f"{_n}-bar log return minus BTC's {_n}-bar log return",
    )(partial(_relative_return, n=_n))
for _n in (1, 24):
    register(
        f"btc_ret_{_n}",
        lookback=_n,
        group="cross_asset",
        needs=_BTC,
        description=f"BTC's simple return over the last {_n} bars (market context)",
    )(partial(_btc_return, n=_n))
register(
    "btc_vol_cc_24",
    lookback=24,
    group="cross_asset",
    needs=_BTC,
    description="BTC's close-to-close volatility over 24 bars (market context)",
)(partial(_btc_vol, n=24))
