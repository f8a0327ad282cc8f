"""Worked examples with known answers, and the rolling kernels cross-checked against pandas.

The complexity and regime features have their own files (``test_complexity.py``, ``test_regime.py``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.features.pipeline import compute_features
from arena_lib.features.registry import list_features
from arena_lib.features.returns import rolling_cov_var, rolling_fraction, rolling_mean, rolling_std, rolling_zscore
from tests.features.conftest import bars


# -- returns and volatility ------------------------------------------------------------------------------------------
def test_returns_on_a_hand_made_series() -> None:
    out = compute_features(bars([100.0, 110.0, 99.0, 99.0, 108.9]), ["ret_1", "ret_2", "logret_1", "logret_4"])
    np.testing.assert_allclose(out["ret_1"], [np.nan, 0.1, -0.1, 0.0, 0.1], rtol=1e-12)
    np.testing.assert_allclose(out["ret_2"], [np.nan, np.nan, -0.01, -0.1, 0.1], rtol=1e-12)
    np.testing.assert_allclose(out["logret_1"], np.log([np.nan, 1.1, 0.9, 1.0, 1.1]), rtol=1e-12)
    np.testing.assert_allclose(out["logret_4"], [np.nan] * 4 + [math.log(1.089)], rtol=1e-12)


def test_range_estimators_on_constant_ranges() -> None:
    """Flat closes with ln(H/L) = 0.02 on every bar: each estimator has a closed form."""
    frame = bars(np.full(60, 100.0), spread=0.01)
    out = compute_features(frame, ["vol_parkinson_24", "vol_gk_24", "vol_rs_24", "vol_yz_24", "vol_cc_24"])
    last = out.iloc[-1]
    assert last["vol_parkinson_24"] == pytest.approx(0.02 / math.sqrt(4 * math.log(2)), rel=1e-12)
    assert last["vol_gk_24"] == pytest.approx(math.sqrt(0.5) * 0.02, rel=1e-12)  # open == close: no body term
    assert last["vol_rs_24"] == pytest.approx(math.sqrt(2) * 0.01, rel=1e-12)  # 0.01^2 + 0.01^2 per bar
    k = 0.34 / (1.34 + 25 / 23)  # no open jumps and no bodies: Yang-Zhang is (1 - k) * RS variance
    assert last["vol_yz_24"] == pytest.approx(math.sqrt((1 - k) * 2e-4), rel=1e-12)
    assert last["vol_cc_24"] == 0.0
    assert out["vol_parkinson_24"].iloc[:23].isna().all()
    assert out["vol_parkinson_24"].iloc[23:].notna().all()


def _two_pass(x: np.ndarray, n: int, fn) -> np.ndarray:
    """``fn`` over every full window, computed from scratch (the exact reference)."""
    out = np.full(len(x), np.nan)
    out[n - 1 :] = [fn(w) for w in np.lib.stride_tricks.sliding_window_view(x, n)]
    return out


def test_rolling_kernels_match_two_pass_and_pandas_with_gaps(eth: pd.DataFrame) -> None:
    x = np.log(eth["close"].to_numpy())
    y = np.log(eth["volume"].to_numpy())
    x[[500, 501, 1700]] = np.nan
    px, py = pd.Series(x), pd.Series(y)
    for n in (2, 24, 168):
        np.testing.assert_allclose(rolling_mean(x, n), _two_pass(x, n, np.mean), rtol=1e-13)
        np.testing.assert_allclose(rolling_std(x, n), _two_pass(x, n, lambda w: np.std(w, ddof=1)), rtol=1e-8)
        np.testing.assert_allclose(rolling_std(x, n, ddof=0), _two_pass(x, n, np.std), rtol=1e-8)
        cov, _vx, vy = rolling_cov_var(x, y, n)
        exact_cov = np.full(len(x), np.nan)
        exact_cov[n - 1 :] = [np.cov(x[i : i + n], y[i : i + n], ddof=1)[0, 1] for i in range(len(x) - n + 1)]
        np.testing.assert_allclose(cov, exact_cov, rtol=1e-8, atol=1e-15)
        y_paired = np.where(np.isnan(x), np.nan, y)  # co-moments use complete pairs only
        np.testing.assert_allclose(vy, _two_pass(y_paired, n, lambda w: np.var(w, ddof=1)), rtol=1e-8)
        if n >= 24:  # pandas' online algorithm agrees to ~1e-9 here (it loses up to 1e-4 on 2-bar windows)
            np.testing.assert_allclose(rolling_std(x, n), px.rolling(n).std(), rtol=1e-8)
            np.testing.assert_allclose(cov, px.rolling(n).cov(py), rtol=1e-7, atol=1e-15)
    z = rolling_zscore(x, 24)
    np.testing.assert_allclose(z, (px - px.rolling(24).mean()) / px.rolling(24).std(), rtol=1e-6, atol=1e-9)
    flags = pd.Series(np.where(np.isnan(x), np.nan, np.r_[0.0, np.diff(x)]))
    expected = (flags > 0).rolling(24).mean().where(flags.rolling(24).count() == 24)
    np.testing.assert_array_equal(rolling_fraction(flags.to_numpy(), 24), expected)


def test_flat_window_zscore_is_zero_not_rounding_noise() -> None:
    rates = np.full(200, 1e-4)
    rates[150] = 3e-4
    z = rolling_zscore(rates, 90)
    assert (z[89:150] == 0.0).all()
    assert z[150] > 5


# -- technical -------------------------------------------------------------------------------------------------------
def test_technical_features_on_a_steady_uptrend() -> None:
    """Close grows by exp(g) per bar: EMAs settle at a fixed ratio K = a / (1 - (1 - a) exp(-g)) to the close."""
    g, s = 0.001, 0.0005
    frame = bars(100 * np.exp(g * np.arange(400)), spread=s)
    out = compute_features(frame, ["rsi_14", "stoch_k_14", "bb_pctb_20", "macd_hist", "ema_dist_26", "adx_14"])
    last = out.iloc[-1]

    def ratio(span: int) -> float:
        a = 2 / (span + 1)
        return a / (1 - (1 - a) * math.exp(-g))

    assert last["rsi_14"] == pytest.approx(100.0)  # no losses at all
    assert last["ema_dist_26"] == pytest.approx(1 / ratio(26) - 1, rel=1e-9)
    # MACD line = close * (K12 - K26); its signal EMA lags it by the same ratio K9
    assert last["macd_hist"] == pytest.approx((ratio(12) - ratio(26)) * (1 - ratio(9)), rel=1e-6)
    # highest high = close * e^s; lowest low = the low 13 bars back = close(t - 14) * e^-s
    low = math.exp(-14 * g - s)
    assert last["stoch_k_14"] == pytest.approx(100 * (1 - low) / (math.exp(s) - low), rel=1e-9)
    assert 0.85 < last["bb_pctb_20"] < 1.0  # the close leads its own 20-bar mean by ~1.6 std
    assert last["adx_14"] > 99  # +DM every bar, -DM never: DX = 100


def test_candle_shape() -> None:
    index = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    frame = pd.DataFrame(
        {"open": [100, 100, 104], "high": [101, 106, 105], "low": [99, 99, 96], "close": [100, 104, 97], "volume": 1.0},
        index=index,
        dtype=np.float64,
    )
    out = compute_features(frame, ["candle_body_pct", "candle_range_pct", "candle_close_loc"])
    np.testing.assert_allclose(out["candle_body_pct"], [0.0, 4 / 104, -7 / 97])
    np.testing.assert_allclose(out["candle_range_pct"], [2 / 100, 7 / 104, 9 / 97])
    np.testing.assert_allclose(out["candle_close_loc"], [0.5, 5 / 7, 1 / 9])


def test_obv_features_do_not_depend_on_where_history_starts(eth: pd.DataFrame) -> None:
    full = compute_features(eth, ["obv_z_168", "obv_flow_24"])
    late = compute_features(eth.iloc[1000:], ["obv_z_168", "obv_flow_24"])
    np.testing.assert_allclose(late.iloc[-500:], full.iloc[-500:], rtol=1e-9, atol=1e-12)
    assert full["obv_flow_24"].abs().max() <= 1.0


# -- multi-timeframe, funding, cross-asset ----------------------------------------------------------------------------
def test_a_4h_bar_is_visible_from_the_hour_it_closes() -> None:
    close = 100.0 + np.arange(12)  # 00:00 .. 11:00; the 4h bars close at 04:00 and 08:00 (and 12:00)
    out = compute_features(bars(close), ["ret_1_4h"], timeframe="1h")["ret_1_4h"]
    assert out.iloc[:7].isna().all()  # the first 4h bar has no previous 4h close
    assert out.iloc[7] == pytest.approx(107.0 / 103.0 - 1)  # row 07:00 closes at 08:00, with the 04:00-08:00 bar
    assert (out.iloc[7:11] == out.iloc[7]).all()  # carried forward until the next 4h bar closes at 12:00
    assert out.iloc[11] == pytest.approx(111.0 / 107.0 - 1)


def test_funding_is_visible_once_settled_and_summarized_per_event() -> None:
    frame = bars(np.full(30, 100.0))  # 2024-01-01 00:00 .. 2024-01-02 05:00
    times = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-01 08:00", "2024-01-01 16:00", "2024-01-02 00:00"])
    funding = pd.Series([1e-4, 3e-4, -2e-4, 5e-4], index=times.tz_localize("UTC"))
    out = compute_features(
        frame, ["funding_last", "funding_mean_3", "funding_change_1", "funding_age_h"], funding=funding
    )
    # row 00:00 closes at 01:00 and sees the 00:00 settlement; row 07:00 closes at 08:00 and sees 08:00's
    assert out["funding_last"].iloc[0] == 1e-4
    assert out["funding_last"].iloc[6] == 1e-4
    assert out["funding_last"].iloc[7] == 3e-4
    assert out["funding_age_h"].iloc[7] == 0.0
    assert out["funding_age_h"].iloc[6] == 7.0
    assert out["funding_change_1"].iloc[15] == pytest.approx(-5e-4)
    assert np.isnan(out["funding_mean_3"].iloc[14])
    assert out["funding_mean_3"].iloc[15] == pytest.approx(2e-4 / 3)
    assert out["funding_last"].iloc[-1] == 5e-4


def test_symbol_without_funding_reads_nan() -> None:
    frame = load_sample("SOL/USDT", "1h", "2024-01-01", "2024-01-05")
    out = compute_features(frame, ["funding_last", "funding_z_90"], funding=load_sample_funding("SOL/USDT"))
    assert out.isna().all().all()


def test_btc_against_itself_and_a_levered_copy() -> None:
    btc = load_sample("BTC/USDT", "1h", "2024-01-01", "2024-03-01")
    names = ["beta_btc_168", "corr_btc_168", "idio_vol_168", "rel_ret_btc_24"]
    itself = compute_features(btc, names, btc=btc).dropna()
    assert (itself["beta_btc_168"] == 1.0).all()
    assert (itself["corr_btc_168"] == 1.0).all()
    assert (itself["idio_vol_168"].abs() < 1e-12).all()
    assert (itself["rel_ret_btc_24"] == 0.0).all()
    levered = btc.copy()  # log returns exactly twice BTC's: beta 2, correlation 1
    levered["close"] = btc["close"].iloc[0] * np.exp(2 * np.log(btc["close"] / btc["close"].iloc[0]))
    out = compute_features(levered, names, btc=btc).dropna()
    np.testing.assert_allclose(out["beta_btc_168"], 2.0, rtol=1e-9)
    np.testing.assert_allclose(out["corr_btc_168"], 1.0, rtol=1e-9)


def test_missing_btc_bars_read_nan_not_filled() -> None:
    eth = load_sample("ETH/USDT", "1h", "2024-01-01", "2024-01-20")
    btc = load_sample("BTC/USDT", "1h", "2024-01-01", "2024-01-20").drop(pd.Timestamp("2024-01-10 05:00", tz="UTC"))
    out = compute_features(eth, ["btc_ret_1", "beta_btc_72"], btc=btc)
    assert np.isnan(out.loc["2024-01-10 05:00", "btc_ret_1"])
    # BTC's next return spans the gap on BTC's own bars; the 72-bar window holding the missing bar reads NaN
    assert out.loc["2024-01-10 05:00":"2024-01-13 04:00", "beta_btc_72"].isna().all()
    assert out.loc["2024-01-13 05:00":, "beta_btc_72"].notna().all()


# -- calendar --------------------------------------------------------------------------------------------------------
def test_calendar_values_on_known_timestamps() -> None:
    index = pd.DatetimeIndex(["2024-01-06 06:00", "2024-01-31 07:00", "2024-02-01 08:00"], tz="UTC")
    frame = pd.DataFrame(1.0, index=index, columns=["open", "high", "low", "close", "volume"])
    out = compute_features(frame, list_features("calendar"), timeframe="1h")
    # Saturday 06:00
    assert out["hour_sin"].iloc[0] == pytest.approx(1.0)
    assert out["hour_cos"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert out["is_weekend"].tolist() == [1.0, 0.0, 0.0]
    assert out["is_month_end"].tolist() == [0.0, 1.0, 0.0]
    assert out["dow_sin"].iloc[0] == pytest.approx(math.sin(2 * math.pi * (5 + 6 / 24) / 7))
    assert out["hours_to_funding"].tolist() == [1.0, 0.0, 7.0]  # closes at 07:00, 08:00, 09:00
    assert out["session_asia"].tolist() == [1.0, 1.0, 0.0]
    assert out["session_europe"].tolist() == [0.0, 1.0, 1.0]
