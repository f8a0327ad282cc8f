"""Worked examples and properties for arena_lib.analytics.metrics.

Expected values are computed by hand in each test, with the arithmetic in comments.
The cross-checks at the end compare against empyrical (empyrical-reloaded) on the same
daily returns, when it is installed.
"""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arena_lib.analytics import metrics as m

DAILY = 365.25  # periods per year for daily bars: 365.25 days / 1 day


def _curve(values: list[float], freq: str = "1D") -> pd.Series:
    index = pd.date_range("2024-01-01", periods=len(values), freq=freq, tz="UTC")
    return pd.Series(values, index=index, dtype=float)


def _trades(pnl: list[float], fees: list[float], hours: list[float]) -> pd.DataFrame:
    entry = pd.Timestamp("2024-01-01", tz="UTC")
    n = len(pnl)
    return pd.DataFrame(
        {
            "symbol": ["BTC/USDT"] * n,
            "direction": [1 if i % 2 == 0 else -1 for i in range(n)],
            "entry_time": [entry] * n,
            "exit_time": [entry + pd.Timedelta(hours=h) for h in hours],
            "entry_price": [100.0] * n,
            "exit_price": [101.0] * n,
            "quantity": [1.0] * n,
            "pnl": pnl,
            "fees": fees,
            "funding": [0.0] * n,
        }
    )


def _same(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-8) -> bool:
    """Equal, or both NaN, or the same infinity."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


# The worked 5-point curve, daily bars from 2024-01-01:
#   day      Jan 1  Jan 2  Jan 3  Jan 4  Jan 5
#   equity    100    110     99    105    115
#   peak      100    110    110    110    115
#   drawdown   0      0    -0.10  -0.045   0      (99/110 - 1 = -0.1; 105/110 - 1)
# Under water on Jan 3 and Jan 4, back at a new high on Jan 5:
#   duration = Jan 5 - Jan 2 (the peak) = 3 days.
FIVE = [100.0, 110.0, 99.0, 105.0, 115.0]


# --------------------------------------------------------------------- annualisation


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("1D", 365.25),  # 365.25 days / 1 day
        ("1h", 8766.0),  # 365.25 * 24
        ("4h", 2191.5),  # 8766 / 4
        ("15min", 35064.0),  # 8766 * 4
    ],
)
def test_periods_per_year_inferred_from_bar_interval(freq: str, expected: float) -> None:
    assert m.infer_periods_per_year(_curve([1.0] * 10, freq).index) == pytest.approx(expected)


def test_periods_per_year_uses_median_spacing() -> None:
    # Spacings 1h, 1h, 5h, 1h: the median is 1h, so one gap does not change the answer.
    index = pd.DatetimeIndex(
        ["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00",
         "2024-01-01 07:00", "2024-01-01 08:00"],
        tz="UTC",
    )  # fmt: skip
    assert m.infer_periods_per_year(index) == pytest.approx(8766.0)
    assert math.isnan(m.infer_periods_per_year(index[:1]))


def test_periods_per_year_needs_datetime_index() -> None:
    with pytest.raises(TypeError, match="periods_per_year"):
        m.infer_periods_per_year(pd.RangeIndex(5))
    # An explicit periods_per_year makes a plain index fine.
    plain = pd.Series(FIVE)
    assert m.sharpe(plain, periods_per_year=DAILY) == pytest.approx(m.sharpe(_curve(FIVE)))


# --------------------------------------------------------------------- growth


def test_returns_and_total_return_of_five_point_curve() -> None:
    equity = _curve(FIVE)
    # r = 110/100-1, 99/110-1, 105/99-1, 115/105-1
    expected = [0.1, -0.1, 6 / 99, 10 / 105]
    np.testing.assert_allclose(m.simple_returns(equity).to_numpy(), expected)
    assert m.simple_returns(equity).index[0] == equity.index[1]
    assert m.total_return(equity) == pytest.approx(0.15)  # 115/100 - 1


def test_cagr_over_two_years() -> None:
    # Yearly bars: 100 -> 110 -> 121 is +10% a year: (121/100)^(1/2) - 1 = 0.1.
    equity = _curve([100.0, 110.0, 121.0])
    assert m.cagr(equity, periods_per_year=1.0) == pytest.approx(0.1)
    # Daily bars, inferred: years = 4 / 365.25, CAGR = 1.15^(365.25/4) - 1 (~3.49e5).
    assert m.cagr(_curve(FIVE)) == pytest.approx(1.15 ** (365.25 / 4) - 1)


# --------------------------------------------------------------------- drawdowns


def test_drawdown_of_five_point_curve() -> None:
    equity = _curve(FIVE)
    np.testing.assert_allclose(m.drawdown_series(equity).to_numpy(), [0.0, 0.0, -0.1, 105 / 110 - 1, 0.0])
    assert m.max_drawdown(equity) == pytest.approx(-0.1)
    assert m.max_drawdown_duration(equity) == pd.Timedelta(days=3)


def test_drawdown_duration_runs_to_the_end_when_not_recovered() -> None:
    # 100, 120, 90, 130, 117:
    #   spell 1: peak 120 on Jan 2, under on Jan 3, new high 130 on Jan 4 -> 2 days
    #   spell 2: peak 130 on Jan 4, still under on Jan 5 (the end)       -> 1 day
    #   max drawdown = 90/120 - 1 = -0.25; longest spell = 2 days.
    equity = _curve([100.0, 120.0, 90.0, 130.0, 117.0])
    assert m.max_drawdown(equity) == pytest.approx(-0.25)
    assert m.max_drawdown_duration(equity) == pd.Timedelta(days=2)
    # 100, 90, 95, 80, 99: never back to 100, so Jan 1 -> Jan 5 = 4 days;
    # max drawdown = 80/100 - 1 = -0.2.
    equity = _curve([100.0, 90.0, 95.0, 80.0, 99.0])
    assert m.max_drawdown(equity) == pytest.approx(-0.2)
    assert m.max_drawdown_duration(equity) == pd.Timedelta(days=4)


def test_drawdown_duration_uses_timestamps_not_bar_counts() -> None:
    # Hourly bars: peak at 01:00, recovery (equal to the peak) at 04:00 -> 3 hours.
    equity = _curve([100.0, 105.0, 101.0, 102.0, 105.0, 104.0], freq="1h")
    # Then under water again from 04:00 to the last bar at 05:00 -> 1 hour.
    assert m.max_drawdown_duration(equity) == pd.Timedelta(hours=3)


def test_calmar_is_cagr_over_max_drawdown() -> None:
    # Yearly bars 100 -> 80 -> 121: CAGR = (121/100)^(1/2) - 1 = 0.1,
    # max drawdown = 80/100 - 1 = -0.2, Calmar = 0.1 / 0.2 = 0.5.
    equity = _curve([100.0, 80.0, 121.0])
    assert m.calmar(equity, periods_per_year=1.0) == pytest.approx(0.5)
    # No drawdown: Calmar is undefined (NaN), not inf.
    assert math.isnan(m.calmar(_curve([100.0, 110.0, 121.0]), periods_per_year=1.0))


# --------------------------------------------------------------------- risk-adjusted


def test_sharpe_and_sortino_of_five_point_curve_by_hand() -> None:
    equity = _curve(FIVE)
    r = [0.1, -0.1, 6 / 99, 10 / 105]
    # mean = (0.1 - 0.1 + 2/33 + 2/21) / 4 = (12/77) / 4 = 3/77 ~ 0.038961
    mean = 3 / 77
    assert statistics.mean(r) == pytest.approx(mean)
    # Sample std (ddof=1): sqrt(sum((r - mean)^2) / 3) ~ 0.094290
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / 3)
    assert std == pytest.approx(0.0942895, rel=1e-6)
    # Sharpe = mean / std * sqrt(365.25) ~ 0.413206 * 19.1116 ~ 7.8970
    assert m.sharpe(equity) == pytest.approx(mean / std * math.sqrt(365.25))
    assert m.sharpe(equity) == pytest.approx(7.897002, rel=1e-6)
    # Downside deviation over all 4 periods: sqrt((0 + 0.01 + 0 + 0) / 4) = 0.05.
    # Sortino = (3/77) / 0.05 * sqrt(365.25) = (60/77) * 19.1116 ~ 14.8921
    assert m.sortino(equity) == pytest.approx(60 / 77 * math.sqrt(365.25))
    # With periods_per_year = 4, sqrt(4) = 2: Sortino = 120/77.
    assert m.sortino(equity, periods_per_year=4.0) == pytest.approx(120 / 77)


def test_sharpe_with_annual_risk_free_rate() -> None:
    equity = _curve(FIVE)
    r = np.array([0.1, -0.1, 6 / 99, 10 / 105])
    # 5% a year over 365.25 daily bars: rf_bar = 1.05^(1/365.25) - 1 ~ 0.0001336
    rf_bar = 1.05 ** (1 / 365.25) - 1
    excess = r - rf_bar
    expected = excess.mean() / excess.std(ddof=1) * math.sqrt(365.25)
    assert m.sharpe(equity, risk_free=0.05) == pytest.approx(expected)
    assert m.sharpe(equity, risk_free=0.05) < m.sharpe(equity)


def test_sortino_without_losing_bars() -> None:
    # Only gains: downside deviation 0, positive mean -> inf (empyrical's convention).
    assert m.sortino(_curve([100.0, 101.0, 103.0, 104.0])) == math.inf


def test_constant_growth_has_no_sharpe() -> None:
    # 100 * 1.01^t: every return is 0.01 up to float noise (~1e-18 std),
    # which must read as zero dispersion (NaN), not as a Sharpe of 1e15.
    equity = _curve([100.0 * 1.01**t for t in range(30)])
    assert math.isnan(m.sharpe(equity))


# --------------------------------------------------------------------- trades


def test_trade_statistics_by_hand() -> None:
    trades = _trades(
        pnl=[30.0, -10.0, 20.0, -20.0, 0.0],
        fees=[1.0, 1.0, 1.0, 1.0, 1.0],
        hours=[1.0, 2.0, 3.0, 4.0, 5.0],
    )
    assert m.number_of_trades(trades) == 5
    # wins: 30 and 20 (0 is not a win) -> 2 / 5 = 0.4
    assert m.win_rate(trades) == pytest.approx(0.4)
    # gross profit 30 + 20 = 50, gross loss 10 + 20 = 30 -> 50/30 = 5/3
    assert m.profit_factor(trades) == pytest.approx(5 / 3)
    # sum pnl = 30 - 10 + 20 - 20 + 0 = 20 -> 20 / 5 = 4.0 per trade
    assert m.expectancy(trades) == pytest.approx(4.0)
    # pnl before fees = 20 + 5 = 25; fees 5 -> 5 / 25 = 0.2
    assert m.fees_share_of_pnl(trades) == pytest.approx(0.2)
    # held 1..5 hours -> mean 3 hours
    assert m.avg_trade_duration(trades) == pd.Timedelta(hours=3)


def test_fees_share_when_pre_fee_result_is_a_loss() -> None:
    # pnl net -12, fees 3: pre-fee result -9; 3 / |-9| = 1/3.
    trades = _trades(pnl=[-12.0], fees=[3.0], hours=[1.0])
    assert m.fees_share_of_pnl(trades) == pytest.approx(1 / 3)
    # pnl net -2, fees 2: pre-fee result 0 -> NaN (no division by zero).
    assert math.isnan(m.fees_share_of_pnl(_trades([-2.0], [2.0], [1.0])))


def test_profit_factor_edges() -> None:
    # profit and no loss -> inf
    assert m.profit_factor(_trades([5.0, 0.0], [0.0, 0.0], [1.0, 1.0])) == math.inf
    # only break-even trades -> NaN
    assert math.isnan(m.profit_factor(_trades([0.0, 0.0], [0.0, 0.0], [1.0, 1.0])))
    # only losses -> 0
    assert m.profit_factor(_trades([-5.0], [0.0], [1.0])) == 0.0


@pytest.mark.parametrize(
    "trades",
    [pd.DataFrame(columns=list(m.TRADE_COLUMNS)), pd.DataFrame()],
    ids=["empty-with-columns", "empty-no-columns"],
)
def test_no_trades(trades: pd.DataFrame) -> None:
    assert m.number_of_trades(trades) == 0
    for fn in (m.win_rate, m.profit_factor, m.expectancy, m.fees_share_of_pnl):
        assert math.isnan(fn(trades))
    assert m.avg_trade_duration(trades) is None


# --------------------------------------------------------------------- activity


def test_exposure_fraction() -> None:
    # bool: 3 of 4 bars in the market
    assert m.exposure_fraction(pd.Series([True, False, True, True])) == 0.75
    # gross notional: non-zero on 2 of 5 bars (NaN counts as flat)
    notional = pd.Series([0.0, 1500.0, -200.0, 0.0, np.nan])
    assert m.exposure_fraction(notional) == pytest.approx(0.4)
    assert math.isnan(m.exposure_fraction(None))
    assert math.isnan(m.exposure_fraction(pd.Series([], dtype=bool)))


def test_turnover() -> None:
    equity = _curve(FIVE)
    # mean equity = (100 + 110 + 99 + 105 + 115) / 5 = 529 / 5 = 105.8
    # fills 1058 -> 1058 / 105.8 = 10 times the average capital
    assert m.turnover(1058.0, equity) == pytest.approx(10.0)
    # over years = 4 / 365.25 -> 10 * 365.25 / 4 = 913.125 a year
    assert m.annualised_turnover(1058.0, equity) == pytest.approx(913.125)
    assert m.turnover(0.0, equity) == 0.0


# --------------------------------------------------------------------- summary


def test_summary_keys_and_values() -> None:
    equity = _curve(FIVE)
    trades = _trades([30.0, -10.0], [1.0, 1.0], [2.0, 4.0])
    summary = m.summarize(
        equity,
        trades,
        fills_notional_total=1058.0,
        exposure=pd.Series([False, True, True, False, False]),
    )
    assert tuple(summary) == m.SUMMARY_KEYS
    assert summary["total_return"] == pytest.approx(0.15)
    assert summary["max_drawdown"] == pytest.approx(-0.1)
    assert summary["max_drawdown_duration_days"] == pytest.approx(3.0)
    assert summary["sharpe"] == pytest.approx(7.897002, rel=1e-6)
    assert summary["sortino"] == pytest.approx(60 / 77 * math.sqrt(365.25))
    assert summary["calmar"] == pytest.approx((1.15 ** (365.25 / 4) - 1) / 0.1)
    assert summary["win_rate"] == pytest.approx(0.5)  # 1 of 2
    assert summary["profit_factor"] == pytest.approx(3.0)  # 30 / 10
    assert summary["expectancy"] == pytest.approx(10.0)  # (30 - 10) / 2
    assert summary["exposure"] == pytest.approx(0.4)  # 2 of 5 bars
    assert summary["turnover"] == pytest.approx(10.0)  # 1058 / 105.8
    # fees 1 + 1 = 2; pnl before fees = (30 - 10) + 2 = 22 -> 2 / 22 = 1/11
    assert summary["fees_share_of_pnl"] == pytest.approx(1 / 11)
    assert summary["trades"] == 2
    assert isinstance(summary["trades"], int)
    assert summary["final_equity"] == 115.0
    assert summary["avg_trade_hours"] == pytest.approx(3.0)  # (2 + 4) / 2
    for key, value in summary.items():
        assert type(value) in (float, int), key  # plain Python numbers for MLflow


def _quiet_summary(equity: pd.Series, trades: pd.DataFrame) -> dict[str, float]:
    """Summarize with every warning turned into an error: edge cases must be silent."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = m.summarize(equity, trades)
    return {key: float(value) for key, value in summary.items()}


def test_flat_equity() -> None:
    s = _quiet_summary(_curve([100.0] * 5), pd.DataFrame())
    assert s["total_return"] == 0.0
    assert s["cagr"] == 0.0
    assert math.isnan(s["sharpe"])  # std 0 -> NaN, not inf
    assert math.isnan(s["sortino"])
    assert math.isnan(s["calmar"])
    assert s["max_drawdown"] == 0.0
    assert s["max_drawdown_duration_days"] == 0.0
    assert s["trades"] == 0
    assert math.isnan(s["win_rate"])
    assert math.isnan(s["avg_trade_hours"])


def test_single_bar() -> None:
    s = _quiet_summary(_curve([1000.0]), pd.DataFrame(columns=list(m.TRADE_COLUMNS)))
    assert s["total_return"] == 0.0
    assert s["final_equity"] == 1000.0
    assert s["max_drawdown"] == 0.0
    assert s["max_drawdown_duration_days"] == 0.0
    for key in ("cagr", "sharpe", "sortino", "calmar", "exposure"):
        assert math.isnan(s[key]), key


def test_empty_equity() -> None:
    s = _quiet_summary(pd.Series([], dtype=float), pd.DataFrame())
    assert set(s) == set(m.SUMMARY_KEYS)
    assert math.isnan(s["final_equity"])
    assert math.isnan(s["max_drawdown"])


def test_equity_that_hits_zero() -> None:
    # 100 -> 50 -> 0 -> 0 -> 0: returns -0.5, -1, then 0 (undefined after ruin).
    equity = _curve([100.0, 50.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(m.simple_returns(equity).to_numpy(), [-0.5, -1, 0, 0])
    s = _quiet_summary(equity, _trades([-100.0], [0.0], [48.0]))
    assert s["total_return"] == -1.0
    assert s["cagr"] == -1.0
    assert s["max_drawdown"] == -1.0
    assert s["max_drawdown_duration_days"] == 4.0  # Jan 1 (peak) to Jan 5 (the end)
    assert s["calmar"] == -1.0  # -1 / |-1|
    assert math.isfinite(s["sharpe"])
    assert s["final_equity"] == 0.0


def test_negative_equity_is_a_total_loss_drawdown() -> None:
    # Leverage can push equity below 0: the drawdown is clipped at -1 (total loss).
    equity = _curve([100.0, 50.0, -10.0, 5.0])
    assert m.max_drawdown(equity) == -1.0
    assert m.total_return(equity) == pytest.approx(-0.95)  # 5/100 - 1


def test_nan_equity_is_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        m.summarize(_curve([100.0, np.nan, 101.0]), pd.DataFrame())


# --------------------------------------------------------------------- properties

_equity_values = st.lists(
    st.floats(min_value=-1e6, max_value=1e9, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=60,
)


@given(
    first=st.floats(min_value=1e-3, max_value=1e9, allow_nan=False),
    rest=_equity_values,
)
def test_max_drawdown_is_between_minus_one_and_zero(first: float, rest: list[float]) -> None:
    equity = _curve([first, *rest])
    mdd = m.max_drawdown(equity)
    assert -1.0 <= mdd <= 0.0
    duration = m.max_drawdown_duration(equity)
    assert duration is not None
    assert pd.Timedelta(0) <= duration <= equity.index[-1] - equity.index[0]


# Returns on a basis-point grid (-50% .. +50%): non-zero returns are >= 1e-4, so a
# ratio's denominator is either clearly non-zero or exactly zero, never float noise.
_bps_returns = st.lists(st.integers(min_value=-5000, max_value=5000), min_size=0, max_size=60)


@settings(max_examples=200)
@given(
    bps=_bps_returns,
    scale=st.floats(min_value=1e-3, max_value=1e6, allow_nan=False),
)
def test_ratio_metrics_ignore_the_scale_of_equity(bps: list[int], scale: float) -> None:
    factors = [1.0 + b / 10_000 for b in bps]
    base = _curve(list(100.0 * np.cumprod([1.0, *factors])))
    scaled = base * scale
    for fn in (
        m.total_return,
        m.cagr,
        m.sharpe,
        m.sortino,
        m.calmar,
        m.max_drawdown,
    ):
        assert _same(fn(base), fn(scaled)), fn.__name__
    assert m.max_drawdown_duration(base) == m.max_drawdown_duration(scaled)
    # Turnover is a ratio too, once fills are in the same currency units.
    assert _same(m.turnover(500.0, base), m.turnover(500.0 * scale, scaled))


# --------------------------------------------------------------------- cross-checks


@pytest.fixture
def daily_returns() -> pd.Series:
    rng = np.random.default_rng(7)
    index = pd.date_range("2023-01-02", periods=400, freq="1D", tz="UTC")
    return pd.Series(rng.normal(0.0008, 0.03, len(index)), index=index)


def _equity_from(returns: pd.Series, start: float = 10_000.0) -> pd.Series:
    first = returns.index[0] - pd.Timedelta(days=1)
    values = start * np.cumprod(np.concatenate(([1.0], 1.0 + returns.to_numpy())))
    return pd.Series(values, index=returns.index.insert(0, first))


def test_sharpe_sortino_against_independent_formula(daily_returns: pd.Series) -> None:
    equity = _equity_from(daily_returns)
    r = daily_returns.to_list()
    ann = math.sqrt(365.25)
    # Sharpe: statistics.mean / statistics.stdev (n - 1) on the plain list.
    assert m.sharpe(equity) == pytest.approx(statistics.mean(r) / statistics.stdev(r) * ann, rel=1e-9)
    # Sortino: downside deviation is the root mean square of min(r, 0) over all r.
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    assert m.sortino(equity) == pytest.approx(statistics.mean(r) / downside * ann, rel=1e-9)


def test_against_empyrical(daily_returns: pd.Series) -> None:
    ep = pytest.importorskip("empyrical")
    equity = _equity_from(daily_returns)
    r = daily_returns
    assert m.sharpe(equity) == pytest.approx(ep.sharpe_ratio(r, annualization=DAILY), rel=1e-9)
    assert m.sortino(equity) == pytest.approx(ep.sortino_ratio(r, annualization=DAILY), rel=1e-9)
    assert m.max_drawdown(equity) == pytest.approx(ep.max_drawdown(r), rel=1e-9)
    assert m.cagr(equity) == pytest.approx(ep.annual_return(r, annualization=DAILY), rel=1e-9)
    assert m.calmar(equity) == pytest.approx(ep.calmar_ratio(r, annualization=DAILY), rel=1e-9)
    # Risk-free: ours is annual, empyrical's per period.
    rf_bar = 1.03 ** (1 / DAILY) - 1
    assert m.sharpe(equity, risk_free=0.03) == pytest.approx(
        ep.sharpe_ratio(r, risk_free=rf_bar, annualization=DAILY), rel=1e-9
    )
    assert m.sortino(equity, risk_free=0.03) == pytest.approx(
        ep.sortino_ratio(r, required_return=rf_bar, annualization=DAILY), rel=1e-9
    )


def test_against_empyrical_hourly_bars() -> None:
    # Same check on hourly bars: periods_per_year is inferred as 8766.
    ep = pytest.importorskip("empyrical")
    rng = np.random.default_rng(11)
    index = pd.date_range("2024-03-01", periods=500, freq="1h", tz="UTC")
    r = pd.Series(rng.normal(0.0, 0.004, len(index)), index=index)
    equity = pd.Series(
        1_000.0 * np.cumprod(np.concatenate(([1.0], 1.0 + r.to_numpy()))),
        index=index.insert(0, index[0] - pd.Timedelta(hours=1)),
    )
    assert m.sharpe(equity) == pytest.approx(ep.sharpe_ratio(r, annualization=8766), rel=1e-9)
    assert m.sortino(equity) == pytest.approx(ep.sortino_ratio(r, annualization=8766), rel=1e-9)
