"""The registry's metadata and the pipeline's contract: names, lookbacks, groups, column order, and the errors a
caller gets for unknown names, missing context and malformed input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.features.pipeline import compute_features, compute_panel, max_lookback, select
from arena_lib.features.registry import (
    CONTEXTS,
    FEATURES,
    TIMEFRAMES,
    FeatureSpec,
    feature_table,
    groups,
    list_features,
    register,
    resolve,
)


@pytest.fixture(scope="module")
def eth() -> pd.DataFrame:
    return load_sample("ETH/USDT", "1h", "2024-01-01", "2024-02-15")


@pytest.fixture(scope="module")
def btc() -> pd.DataFrame:
    return load_sample("BTC/USDT", "1h", "2024-01-01", "2024-02-15")


def test_at_least_100_features_each_fully_described() -> None:
    assert len(FEATURES) >= 100
    table = feature_table()
    assert len(table) == len(FEATURES)
    assert table["name"].is_unique
    assert list(table.columns) == ["name", "group", "lookback", "timeframe", "needs", "recursive", "description"]
    for name, spec in FEATURES.items():
        assert isinstance(spec, FeatureSpec)
        assert spec.name == name
        assert isinstance(spec.lookback, int), name
        assert spec.lookback >= 0, name
        assert spec.group, name
        assert spec.description, name
        assert spec.timeframe in TIMEFRAMES, name
        assert spec.needs <= CONTEXTS, name


def test_required_families_are_registered_one_name_per_parameter() -> None:
    required = [
        *("ret_1", "ret_4", "ret_24", "logret_1", "logret_24", "zscore_close_24"),
        *("vol_cc_24", "vol_parkinson_24", "vol_gk_24", "vol_rs_24", "vol_yz_24", "natr_14", "atr_14"),
        *("ema_dist_12", "sma_dist_20", "rsi_7", "rsi_14", "macd_line", "macd_signal", "macd_hist"),
        *("bb_pctb_20", "bb_width_20", "adx_14", "plus_di_14", "minus_di_14", "stoch_k_14", "stoch_d_14"),
        *("obv_z_168", "obv_flow_24", "volume_z_24", "candle_body_atr", "candle_upper_wick_atr", "candle_range_atr"),
        *("rsi_14_4h", "rsi_14_1d", "ret_1_4h", "funding_last", "funding_mean_21", "funding_sum_21", "funding_z_90"),
        *("beta_btc_168", "corr_btc_168", "hurst_256", "fd_higuchi_128", "fd_katz_128", "sampen_128", "lyap_336"),
        *("vol_regime_3", "hmm_high_vol_prob", "hour_sin", "hour_cos", "dow_sin", "is_weekend", "is_month_end"),
    ]
    missing = [n for n in required if n not in FEATURES]
    assert not missing


def test_metadata_matches_what_features_read() -> None:
    assert FEATURES["beta_btc_72"].needs == frozenset({"btc"})
    assert FEATURES["funding_z_90"].needs == frozenset({"funding"})
    assert FEATURES["rsi_14"].needs == frozenset()
    assert FEATURES["rsi_14_4h"].timeframe == "4h"
    assert FEATURES["rsi_14_1d"].timeframe == "1d"
    assert FEATURES["ret_24"].lookback == 24
    assert FEATURES["rsi_14"].recursive
    assert not FEATURES["ret_24"].recursive
    assert FEATURES["rsi_14_1d"].lookback > 24 * FEATURES["rsi_14"].lookback


def test_groups_and_list_features() -> None:
    assert {"returns", "volatility", "multitimeframe", "funding", "cross_asset", "complexity", "regime"} <= set(
        groups()
    )
    assert list_features("funding") == [n for n, s in FEATURES.items() if s.group == "funding"]
    assert list_features() == list(FEATURES)
    with pytest.raises(KeyError, match="no feature group 'nope'; groups: returns"):
        list_features("nope")


def test_columns_come_in_registry_order(eth: pd.DataFrame) -> None:
    out = compute_features(eth, ["rsi_14", "ret_1", "hour_sin"])
    assert list(out.columns) == ["ret_1", "rsi_14", "hour_sin"]
    assert out.index.equals(eth.index)
    assert (out.dtypes == np.float64).all()


def test_unknown_names_get_close_matches() -> None:
    with pytest.raises(KeyError, match=r"unknown feature: 'rsi_15' \(did you mean rsi_14"):
        resolve(["rsi_15"])
    with pytest.raises(KeyError, match="unknown features: 'nope'; 'vol_gk_25'"):
        compute_features(load_sample("BTC/USDT", "1h", "2024-01-01", "2024-01-02"), ["nope", "vol_gk_25"])


def test_missing_context_names_the_features_that_need_it(eth: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"features \['beta_btc_72'\] need the BTC bars: pass btc="):
        compute_features(eth, ["ret_1", "beta_btc_72"])
    with pytest.raises(ValueError, match=r"features \['funding_last', 'funding_z_90'\] need the funding series"):
        compute_features(eth, ["funding_last", "funding_z_90"])


def test_default_set_is_what_the_context_allows(eth: pd.DataFrame, btc: pd.DataFrame) -> None:
    plain = select(None, has_btc=False, has_funding=False)
    assert all(not s.needs for s in plain)
    everything = select(None, has_btc=True, has_funding=True)
    assert [s.name for s in everything] == list(FEATURES)
    daily = select(None, has_btc=False, has_funding=False, timeframe="1d")
    assert "rsi_14_4h" not in {s.name for s in daily}
    assert "rsi_14_1d" in {s.name for s in daily}
    out = compute_features(eth, btc=btc)
    assert "beta_btc_72" in out.columns
    assert "funding_last" not in out.columns


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda f: f.drop(columns="volume"), ValueError, r"lacks columns \['volume'\]"),
        (lambda f: f.tz_localize(None), ValueError, "tz-aware"),
        (lambda f: f.iloc[::-1], ValueError, "sorted and unique"),
        (lambda f: f["close"], TypeError, "must be a pandas DataFrame"),
    ],
)
def test_malformed_frames_are_rejected(eth: pd.DataFrame, mutate, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        compute_features(mutate(eth), ["ret_1"])


def test_other_timezones_are_read_as_utc(eth: pd.DataFrame) -> None:
    shifted = eth.tz_convert("America/New_York")
    pd.testing.assert_frame_equal(
        compute_features(shifted, ["hour_sin", "ret_1"]), compute_features(eth, ["hour_sin", "ret_1"])
    )


def test_empty_frame_gives_empty_columns(eth: pd.DataFrame) -> None:
    out = compute_features(eth.iloc[:0], ["ret_1", "rsi_14"])
    assert list(out.columns) == ["ret_1", "rsi_14"]
    assert len(out) == 0


def test_register_rejects_duplicates_and_bad_metadata() -> None:
    def f(inp):  # pragma: no cover - never computed
        return np.zeros(len(inp))

    with pytest.raises(ValueError, match="'ret_1' is registered twice"):
        register("ret_1", lookback=1, group="returns", description="dup")(f)
    with pytest.raises(ValueError, match="unknown context"):
        register("x_new", lookback=1, group="g", needs={"eth"}, description="x")(f)
    with pytest.raises(ValueError, match="timeframe '2h'"):
        register("x_new", lookback=1, group="g", timeframe="2h", description="x")(f)
    with pytest.raises(ValueError, match="negative lookback"):
        register("x_new", lookback=-1, group="g", description="x")(f)
    assert "x_new" not in FEATURES


def test_max_lookback() -> None:
    assert max_lookback(["ret_1", "ret_24"]) == 24
    assert max_lookback() == max(s.lookback for s in FEATURES.values())
    assert max_lookback(["rsi_14_1d"]) > 24 * 14


def test_panel_stacks_symbols_on_timestamp_and_symbol(eth: pd.DataFrame, btc: pd.DataFrame) -> None:
    names = ["ret_1", "beta_btc_72", "funding_last"]
    funding = {"ETH/USDT": load_sample_funding("ETH/USDT")}
    panel = compute_panel({"BTC/USDT": btc, "ETH/USDT": eth}, names, funding)
    assert panel.index.names == ["timestamp", "symbol"]
    assert panel.index.is_monotonic_increasing
    assert len(panel) == len(eth) + len(btc)
    eth_alone = compute_features(eth, names, btc=btc, funding=funding["ETH/USDT"])
    pd.testing.assert_frame_equal(panel.xs("ETH/USDT", level="symbol"), eth_alone, check_freq=False)
    btc_rows = panel.xs("BTC/USDT", level="symbol")
    assert (btc_rows["beta_btc_72"].dropna() == 1.0).all()  # BTC against itself, taken from frames
    assert btc_rows["funding_last"].isna().all()  # not in the funding mapping: no funding, NaN
    with pytest.raises(ValueError, match="at least one"):
        compute_panel({})
