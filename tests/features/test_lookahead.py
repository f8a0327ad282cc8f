"""Look-ahead and recursive-warm-up tests for EVERY registered feature (in the spirit of freqtrade's
lookahead-analysis and recursive-analysis).

1. Truncation (look-ahead). Features are computed once on ~3,000 real ETH/USDT hourly bars (with BTC/USDT as the
   cross-asset context and ETH's real funding), then again on histories cut at five points, with the BTC bars and the
   funding events cut to what was known at the cut (bars up to it, settlements up to its close). Every value at and
   before each cut must be *identical*: every computation here is causal, so not even rounding may differ. The cuts
   sit at different hours of the day (mid-4h-bucket, mid-day), where a higher-timeframe feature built from a
   still-open bucket would show up. A self-test proves the harness catches two classic leaks.

2. Recursive warm-up (declared lookback). For each feature, the value at a late check point computed on the long
   history must equal the value computed on only ``lookback * k + 1`` bars ending there (``k = 1`` for windowed
   features: the declared lookback must be exactly enough; ``k = 2`` for recursive EMA/Wilder-type features, whose
   start's residual weight after twice the declared warm-up is below 2e-8, see ``registry.ema_warmup``).
   Tolerances: windowed features ``rtol=1e-9`` (the running-window kernels and TA-Lib's running sums refresh at
   positions that depend on where a history starts, so the last bits of a sum differ; observed here: at most
   1e-12 relative, on a value near zero); recursive ones ``rtol=1e-6`` (the residual seed weight above, times the
   seed's error; observed here: at most 1e-8). ``atol`` is the same factor times the column's largest magnitude,
   for values that cross zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.features.lookahead import lookahead_check, truncation_mismatches
from arena_lib.features.pipeline import compute_features
from arena_lib.features.registry import FEATURES

HOUR = pd.Timedelta(hours=1)
START = "2023-01-10"  # the window holds the sample's one-bar gap (2023-03-24 13:00), which must not break anything
N_BARS = 3_000
CUTS = (481, 1002, 1547, 2205, 2742)  # open hours 01, 18, 11, 22, 07 UTC: mid-4h-bucket and mid-day cuts
CHECK_POINTS = (20_001, 20_015)  # rows of the full sample: 2024-04-13 10:00 and 2024-04-14 00:00 UTC


@pytest.fixture(scope="module")
def market() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    eth = load_sample("ETH/USDT", "1h")
    btc = load_sample("BTC/USDT", "1h")
    funding = load_sample_funding("ETH/USDT")
    return eth, btc, funding


@pytest.fixture(scope="module")
def window(market: tuple[pd.DataFrame, pd.DataFrame, pd.Series]) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    eth, btc, funding = market
    eth = eth.loc[START:].iloc[:N_BARS]
    btc = btc.loc[eth.index[0] : eth.index[-1]]
    return eth, btc, funding.loc[: eth.index[-1] + HOUR]


def _all_features(frame: pd.DataFrame, btc: pd.DataFrame, funding: pd.Series) -> pd.DataFrame:
    return compute_features(frame, btc=btc, funding=funding)


def test_every_feature_is_identical_on_truncated_histories(window: tuple) -> None:
    frame, btc, funding = window
    full = _all_features(frame, btc, funding)
    assert list(full.columns) == list(FEATURES), "every registered feature must be under test"
    untested = [n for n in full.columns if full[n].iloc[: CUTS[-1] + 1].notna().sum() < 24]
    assert not untested, f"features with (almost) no values before the last cut test nothing: {untested}"
    assert truncation_mismatches(_all_features, frame, btc, funding, CUTS) == {}


def test_the_harness_catches_look_ahead(window: tuple) -> None:
    """Two classic leaks: a value from the next bar, and 4h bars from pandas' resample (includes the open bucket)."""

    def leaky(frame: pd.DataFrame, btc: pd.DataFrame, funding: pd.Series) -> pd.DataFrame:
        close = frame["close"]
        four_hour = close.resample("4h", label="left").last().reindex(close.index, method="ffill")
        honest = compute_features(frame, ["ret_1", "ret_1_4h"])
        return pd.DataFrame(
            {
                "next_close": close.shift(-1),
                "open_bucket_4h": four_hour / close - 1,
                "ret_1": honest["ret_1"],
                "ret_1_4h": honest["ret_1_4h"],
            }
        )

    frame, btc, funding = window
    bad = truncation_mismatches(leaky, frame, btc, funding, CUTS)
    assert set(bad) == {"next_close", "open_bucket_4h"}


def _history(market: tuple, end: int, bars: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The ``bars`` rows ending at row ``end`` (inclusive), with BTC and funding restricted to the same span."""
    eth, btc, funding = market
    frame = eth.iloc[max(0, end + 1 - bars) : end + 1]
    lo, hi = frame.index[0], frame.index[-1]
    return frame, btc.loc[lo:hi], funding.loc[lo : hi + HOUR]


@pytest.fixture(scope="module")
def long_history(market: tuple) -> dict[int, pd.DataFrame]:
    """All features on the whole history up to each check point (the reference for the warm-up test)."""
    out = {}
    for point in CHECK_POINTS:
        frame, btc, funding = _history(market, point, point + 1)
        out[point] = compute_features(frame, btc=btc, funding=funding, timeframe="1h").iloc[-1:]
    return out


@pytest.mark.parametrize("point", CHECK_POINTS)
def test_every_feature_is_stable_with_its_declared_warm_up(
    market: tuple, long_history: dict[int, pd.DataFrame], point: int
) -> None:
    reference = long_history[point].iloc[-1]
    assert reference.notna().all(), f"reference has NaN: {list(reference[reference.isna()].index)}"
    eth = market[0]
    scale = compute_features(eth.iloc[point - 2_000 : point + 1], btc=market[1], funding=market[2]).abs().max()
    failures = []
    for name, spec in FEATURES.items():
        k, rtol = (2, 1e-6) if spec.recursive else (1, 1e-9)
        frame, btc, funding = _history(market, point, spec.lookback * k + 1)
        short = compute_features(frame, [name], btc=btc, funding=funding, timeframe="1h")[name].iloc[-1]
        expected = reference[name]
        magnitude = float(scale[name]) if np.isfinite(scale[name]) else 0.0
        if not np.isclose(short, expected, rtol=rtol, atol=rtol * magnitude):
            failures.append(f"{name}: {short!r} with {spec.lookback * k + 1} bars vs {expected!r} (full history)")
    assert not failures, "declared lookback too short:\n" + "\n".join(failures)


def test_lookahead_check_passes_honest_features_and_names_a_leak(
    window: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame, btc, funding = window
    frame = frame.iloc[:800]
    names = ["ret_1", "rsi_14", "ret_1_4h", "corr_btc_72", "funding_last"]
    assert lookahead_check(frame, names, btc=btc.loc[: frame.index[-1]], funding=funding) == {}

    import arena_lib.features.pipeline as pipeline

    honest = pipeline.compute_features

    def leaky(f: pd.DataFrame, names: list[str], **context: object) -> pd.DataFrame:
        out = honest(f, names, **context)  # type: ignore[arg-type]
        out["ret_1"] = f["close"].shift(-1) / f["close"] - 1  # tomorrow's return, the classic leak
        return out

    monkeypatch.setattr(pipeline, "compute_features", leaky)
    leaks = lookahead_check(frame, ["ret_1", "rsi_14"], cuts=[500, 700])
    assert leaks == {"ret_1": frame.index[500]}


def test_lookahead_check_needs_room_for_its_cuts(window: tuple) -> None:
    with pytest.raises(ValueError, match="needs at least 12 rows"):
        lookahead_check(window[0].iloc[:10], ["ret_1"])
