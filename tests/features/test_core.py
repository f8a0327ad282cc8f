"""The core indicators match plain pandas references, keep their documented warm-up, and never look ahead."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample
from arena_lib.features import core

# -- plain pandas references (the conventions of core's docstring, written independently of TA-Lib) -------------


def ref_seeded(values: pd.Series, n: int, alpha: float, first: int = 0) -> np.ndarray:
    """Recursive smoothing seeded with the mean of values[first:first+n], placed at index first+n-1."""
    out = np.full(len(values), np.nan)
    if len(values) < first + n:
        return out
    seed = values.iloc[first : first + n].mean()
    rest = values.iloc[first + n :]
    chain = pd.concat([pd.Series([seed]), rest], ignore_index=True)
    out[first + n - 1 :] = chain.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def ref_sma(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n).mean().to_numpy()


def ref_ema(x: np.ndarray, span: int) -> np.ndarray:
    return ref_seeded(pd.Series(x), span, 2.0 / (span + 1))


def ref_rsi(close: np.ndarray, n: int) -> np.ndarray:
    change = pd.Series(close).diff()
    gain = ref_seeded(change.clip(lower=0), n, 1.0 / n, first=1)
    loss = ref_seeded((-change).clip(lower=0), n, 1.0 / n, first=1)
    total = gain + loss
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(total > 0, 100.0 * gain / total, 0.0)  # = 100 - 100 / (1 + gain / loss)
    return np.where(np.isnan(total), np.nan, out)


def ref_macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, ...]:
    line = ref_ema(close, fast) - ref_ema(close, slow)
    sig = np.full(len(close), np.nan)
    sig[slow - 1 :] = ref_ema(line[slow - 1 :], signal)
    return line, sig, line - sig


def ref_true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    h, lo, prev = pd.Series(high), pd.Series(low), pd.Series(close).shift(1)
    tr = pd.concat([h - lo, (h - prev).abs(), (lo - prev).abs()], axis=1).max(axis=1).to_numpy(copy=True)
    tr[0] = np.nan  # no previous close
    return tr


def ref_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    return ref_seeded(pd.Series(ref_true_range(high, low, close)), n, 1.0 / n, first=1)


# -- data -----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Two months of real BTC/USDT hourly candles."""
    return load_sample("BTC/USDT", "1h", "2024-01-01", "2024-03-01")


@pytest.fixture(scope="module")
def walk() -> dict[str, np.ndarray]:
    """A synthetic random walk with a consistent high/low envelope (small prices, as for DOGE)."""
    rng = np.random.default_rng(7)
    close = 0.1 * np.exp(np.cumsum(rng.normal(0, 0.01, 600)))
    spread = np.abs(rng.normal(0, 0.004, 600)) * close
    return {"high": close + spread, "low": close - spread, "close": close}


def _cases(df: pd.DataFrame | dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(name, core output, pandas reference, warm-up length) for every indicator on one OHLC set."""
    h, lo, c = (np.asarray(df[k], dtype=np.float64) for k in ("high", "low", "close"))
    line, sig, hist = core.macd(c, 12, 26, 9)
    r_line, r_sig, r_hist = ref_macd(c, 12, 26, 9)
    return [
        ("sma20", core.sma(c, 20), ref_sma(c, 20), 19),
        ("ema20", core.ema(c, 20), ref_ema(c, 20), 19),
        ("ema50", core.ema(c, 50), ref_ema(c, 50), 49),
        ("rsi7", core.rsi(c, 7), ref_rsi(c, 7), 7),
        ("rsi14", core.rsi(c, 14), ref_rsi(c, 14), 14),
        ("macd", line, r_line, 25),
        ("macd_signal", sig, r_sig, 33),
        ("macd_hist", hist, r_hist, 33),
        ("true_range", core.true_range(h, lo, c), ref_true_range(h, lo, c), 1),
        ("atr3", core.atr(h, lo, c, 3), ref_atr(h, lo, c, 3), 3),
        ("atr14", core.atr(h, lo, c, 14), ref_atr(h, lo, c, 14), 14),
    ]


@pytest.mark.parametrize("source", ["bars", "walk"])
def test_matches_pandas_reference_and_warm_up(source: str, request: pytest.FixtureRequest) -> None:
    data = request.getfixturevalue(source)
    for name, got, ref, warm in _cases(data):
        assert got.dtype == np.float64, name
        assert len(got) == len(data["close"]), name
        assert np.isnan(got[:warm]).all(), f"{name}: the first {warm} values must be NaN"
        assert np.isfinite(got[warm:]).all(), f"{name}: defined from index {warm} on"
        np.testing.assert_allclose(got[warm:], ref[warm:], rtol=1e-9, atol=1e-9, err_msg=name)
        assert np.isnan(ref[:warm]).all(), f"{name}: the reference agrees on the warm-up"


def test_macd_is_the_difference_of_the_emas(bars: pd.DataFrame) -> None:
    c = bars["close"].to_numpy()
    line, sig, hist = core.macd(c)
    np.testing.assert_array_equal(line, core.ema(c, 12) - core.ema(c, 26))
    np.testing.assert_array_equal(hist, line - sig)


@pytest.mark.parametrize("t", [0, 1, 13, 14, 33, 34, 60, 250, 1000])
def test_point_in_time(bars: pd.DataFrame, t: int) -> None:
    """The value at t from x[: t + 1] equals the value at t from the whole array (no look-ahead)."""
    full = _cases(bars)
    cut = _cases(bars.iloc[: t + 1])
    for (name, whole, _, _), (_, part, _, _) in zip(full, cut, strict=True):
        np.testing.assert_array_equal(part[t], whole[t], err_msg=f"{name} at t={t}")


def test_rsi_extremes() -> None:
    up = np.arange(1.0, 31.0)
    assert (core.rsi(up, 14)[14:] == 100.0).all()
    assert (core.rsi(up[::-1].copy(), 14)[14:] == 0.0).all()
    assert (core.rsi(np.full(30, 5.0), 14)[14:] == 0.0).all()  # flat: TA-Lib's convention, documented


def test_short_and_empty_inputs_are_all_nan() -> None:
    short = np.array([1.0, 2.0, 3.0])
    for out in (core.ema(short, 20), core.sma(short, 20), core.rsi(short, 14), *core.macd(short)):
        assert len(out) == 3
        assert np.isnan(out).all()
    assert np.isnan(core.atr(short, short, short, 14)).all()
    for out in (core.ema(np.array([]), 5), core.rsi([], 14), core.atr([], [], [], 3), *core.macd([])):
        assert len(out) == 0


def test_period_one_is_the_series_itself() -> None:
    x = np.array([3.0, 1.0, 2.0])
    np.testing.assert_array_equal(core.ema(x, 1), x)
    np.testing.assert_array_equal(core.sma(x, 1), x)


def test_accepts_lists_and_read_only_views() -> None:
    x = np.linspace(1.0, 2.0, 40)
    view = x[5:]
    view.flags.writeable = False
    np.testing.assert_array_equal(core.ema(view, 10), core.ema(list(x[5:]), 10))


def test_leading_nans_are_skipped() -> None:
    x = np.linspace(1.0, 2.0, 40)
    padded = np.r_[np.full(5, np.nan), x]
    np.testing.assert_allclose(core.ema(padded, 10)[5:], core.ema(x, 10), equal_nan=True)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: core.ema(np.ones((3, 3)), 2), ValueError, "one-dimensional"),
        (lambda: core.sma(np.ones(5), 0), ValueError, "n must be >= 1"),
        (lambda: core.ema(np.ones(5), 2.5), TypeError, "integer"),
        (lambda: core.rsi(np.ones(5), 1), ValueError, "n must be >= 2"),
        (lambda: core.macd(np.ones(50), fast=26, slow=12), ValueError, "shorter than slow"),
        (lambda: core.atr(np.ones(5), np.ones(4), np.ones(5), 3), ValueError, "same length"),
    ],
)
def test_bad_input_is_a_clear_error(call: Callable[[], object], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()
