"""Worked examples with known answers, and cross-checks of Arena's kernels against the libraries they mirror
(pandas for rolling moments, antropy for fractal dimensions and entropies, nolds for the Lyapunov exponent)."""

from __future__ import annotations

import importlib.util
import math
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.features import regime
from arena_lib.features.pipeline import compute_features
from arena_lib.features.registry import list_features
from arena_lib.features.returns import rolling_cov_var, rolling_fraction, rolling_mean, rolling_std, rolling_zscore

RNG = np.random.default_rng(20240101)


def bars(close: np.ndarray, *, start: str = "2024-01-01", spread: float = 0.0, volume: float = 1.0) -> pd.DataFrame:
    """Hourly bars with open = previous close, and high/low at close * exp(+-spread)."""
    close = np.asarray(close, dtype=np.float64)
    index = pd.date_range(start, periods=len(close), freq="h", tz="UTC", name="timestamp")
    opens = np.r_[close[0], close[:-1]]
    hi = np.maximum(opens, close) * math.exp(spread)
    lo = np.minimum(opens, close) * math.exp(-spread)
    return pd.DataFrame({"open": opens, "high": hi, "low": lo, "close": close, "volume": volume}, index=index)


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    return load_sample("ETH/USDT", "1h", "2024-01-01", "2024-04-30")


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


# -- complexity and regime ---------------------------------------------------------------------------------------------
def test_hurst_on_random_walk_trend_and_mean_reversion() -> None:
    steps = RNG.standard_normal(6000) * 0.01
    walk = compute_features(bars(100 * np.exp(np.cumsum(steps))), ["hurst_720"])["hurst_720"]
    assert walk.iloc[-3000:].mean() == pytest.approx(0.5, abs=0.05)
    trend = compute_features(bars(100 * np.exp(np.cumsum(steps * 0.2 + 0.003))), ["hurst_720"])["hurst_720"]
    assert trend.iloc[-1] > 0.8
    ar = np.zeros(6000)  # returns with negative autocorrelation: mean-reverting prices
    for i in range(1, 6000):
        ar[i] = -0.6 * ar[i - 1] + steps[i]
    reverting = compute_features(bars(100 * np.exp(np.cumsum(ar))), ["hurst_720"])["hurst_720"]
    assert reverting.iloc[-3000:].mean() < 0.35


def test_sample_entropy_is_lower_on_a_sine_than_on_noise() -> None:
    t = np.arange(1500)
    sine = compute_features(bars(100 * np.exp(0.05 * np.sin(2 * np.pi * t / 50))), ["sampen_128"])["sampen_128"]
    noise = compute_features(bars(100 * np.exp(np.cumsum(RNG.standard_normal(1500) * 0.01))), ["sampen_128"])
    assert sine.iloc[-1] < 0.5 < 1.5 < noise["sampen_128"].iloc[-1]


def test_sparse_features_change_only_on_their_schedule(eth: pd.DataFrame) -> None:
    out = compute_features(eth, ["lyap_336", "sampen_128"])
    lyap_changes = out.index[out["lyap_336"].diff().fillna(0) != 0]
    assert len(lyap_changes) > 50
    assert (lyap_changes.hour == 23).all()
    sampen_changes = out.index[out["sampen_128"].diff().fillna(0) != 0]
    assert ((sampen_changes.hour + 1) % 4 == 0).all()


def test_regimes_are_labels_and_the_hmm_finds_a_volatile_stretch() -> None:
    """Calm, a volatile burst, calm again, then a second burst: once a refit has seen the first burst, the filtered
    high-variance probability is low in the calm stretch and high in the second burst."""
    segments = [(1100, 0.002), (200, 0.02), (600, 0.002), (200, 0.02)]
    returns = np.concatenate([RNG.standard_normal(size) * sigma for size, sigma in segments])
    frame = bars(100 * np.exp(np.cumsum(returns)))
    out = compute_features(frame, ["hmm_high_vol_prob", "vol_regime_3", "vol_pct_rank_720", "trend_regime"])
    prob = out["hmm_high_vol_prob"]
    assert prob.iloc[:1008].isna().all()  # the first fit needs 1008 past returns
    assert prob.iloc[1500:1900].mean() < 0.1
    assert prob.iloc[-150:].mean() > 0.9
    assert set(out["vol_regime_3"].dropna().unique()) <= {0.0, 1.0, 2.0}
    assert out["vol_regime_3"].iloc[-1] == 2.0
    assert out["vol_pct_rank_720"].dropna().between(0, 1).all()
    assert set(out["trend_regime"].dropna().unique()) <= {-1.0, 0.0, 1.0}


# -- kernels held to the libraries they mirror -----------------------------------------------------------------------
def _nolds_measures() -> ModuleType:
    """``nolds.measures``; nolds 0.6.3's package __init__ fails on Python 3.11 (its datasets module calls
    ``importlib.resources.files`` on a module), so load the self-contained measures module from its file."""
    try:
        import nolds

        return nolds.measures  # type: ignore[no-any-return]
    except TypeError:
        spec = importlib.util.find_spec("nolds")
        assert spec is not None
        assert spec.submodule_search_locations
        path = f"{next(iter(spec.submodule_search_locations))}/measures.py"
        loader_spec = importlib.util.spec_from_file_location("nolds_measures_only", path)
        assert loader_spec is not None
        assert loader_spec.loader is not None
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
        return module


def test_lyapunov_kernel_equals_nolds_lyap_r(eth: pd.DataFrame) -> None:
    measures = _nolds_measures()
    r = np.diff(np.log(eth["close"].to_numpy()))
    p = regime.LYAP_PARAMS
    for start in (0, 900, 2100):
        w = np.ascontiguousarray(r[start : start + 336])
        ours = regime.lyap_rosenstein(w, p["emb_dim"], p["lag"], p["min_tsep"], p["trajectory_len"])
        theirs = measures.lyap_r(w, fit="poly", **p)
        assert ours == pytest.approx(theirs, rel=1e-9)
    chaotic = np.empty(400)  # the logistic map at r=3.9 is chaotic: a clearly positive exponent
    chaotic[0] = 0.3
    for i in range(1, 400):
        chaotic[i] = 3.9 * chaotic[i - 1] * (1 - chaotic[i - 1])
    assert regime.lyap_rosenstein(chaotic, 6, 1, 12, 16) == pytest.approx(
        measures.lyap_r(chaotic, fit="poly", **p), rel=1e-9
    )
    assert regime.lyap_rosenstein(chaotic, 6, 1, 12, 16) > 0.2


def test_fractal_and_entropy_kernels_equal_antropy(eth: pd.DataFrame) -> None:
    antropy = pytest.importorskip("antropy")  # slow import (it compiles its numba kernels), once for this test
    logp = np.log(eth["close"].to_numpy())
    r = np.diff(logp)
    out = compute_features(eth, ["fd_higuchi_128", "fd_katz_128", "perm_entropy_168", "sampen_128"])
    for row in (500, 1333, 2201):  # sampen is evaluated on rows closing at multiples of 4 hours
        w = logp[row - 127 : row + 1]
        assert out["fd_higuchi_128"].iloc[row] == pytest.approx(antropy.higuchi_fd(w, kmax=10), rel=1e-12)
        assert out["fd_katz_128"].iloc[row] == pytest.approx(antropy.katz_fd(w), rel=1e-12)
        rets = r[row - 170 : row]
        assert out["perm_entropy_168"].iloc[row] == pytest.approx(
            antropy.perm_entropy(rets, order=3, normalize=True), rel=1e-12
        )
        last_eval = row - (eth.index[row].hour + 1) % 4
        assert out["sampen_128"].iloc[row] == pytest.approx(
            antropy.sample_entropy(r[last_eval - 128 : last_eval], order=2), rel=1e-12
        )
