"""Trade pairing: entry and exit fills into net round trips, as every board counts them."""

from __future__ import annotations

import pandas as pd
import pytest

from arena_lib.analytics import metrics
from arena_lib.analytics.trades import TRADE_COLUMNS, trades_from_fills
from arena_lib.engine.results import FILL_COLUMNS, BacktestResult, fills_frame

T = pd.Timestamp("2025-01-01", tz="UTC")
H = pd.Timedelta(hours=1)


def _fills(*rows: tuple[str, int, str, str, float, float, float, float, float]) -> pd.DataFrame:
    """(symbol, hour, side, kind, quantity, price, fee, realized_pnl, funding) per fill, in execution order."""
    records = [
        {
            "order_id": f"o{k}",
            "symbol": sym,
            "timestamp": T + hour * H,
            "side": side,
            "quantity": qty,
            "price": price,
            "fee": fee,
            "kind": kind,
            "realized_pnl": pnl,
            "funding": funding,
            "note": "",
        }
        for k, (sym, hour, side, kind, qty, price, fee, pnl, funding) in enumerate(rows)
    ]
    return pd.DataFrame(records, columns=FILL_COLUMNS)


FILLS = _fills(
    ("BTC/USDT", 0, "buy", "entry", 1.0, 100.0, 0.10, 0.0, 0.0),
    ("ETH/USDT", 1, "sell", "entry", 2.0, 50.0, 0.05, 0.0, 0.0),
    ("SOL/USDT", 2, "sell", "exit", 1.0, 20.0, 0.02, 1.0, 0.0),  # no entry in the frame: not a trade
    ("BTC/USDT", 3, "sell", "exit", 1.0, 110.0, 0.11, 10.0, 0.2),
    ("ETH/USDT", 4, "buy", "stop_loss", 2.0, 55.0, 0.055, -10.0, -0.1),
    ("BTC/USDT", 5, "buy", "entry", 1.0, 120.0, 0.12, 0.0, 0.0),  # still open at the end: not a trade
)


def test_entries_are_paired_with_the_exit_that_closed_them() -> None:
    trades = trades_from_fills(FILLS)
    assert list(trades.columns) == TRADE_COLUMNS
    assert list(trades["symbol"]) == ["BTC/USDT", "ETH/USDT"]
    assert list(trades["direction"]) == [1, -1]
    assert list(trades["exit_kind"]) == ["exit", "stop_loss"]
    assert list(trades["entry_time"]) == [T, T + H]
    assert list(trades["exit_time"]) == [T + 3 * H, T + 4 * H]
    # net: realized PnL minus both fills' fees minus the funding paid while open
    assert list(trades["pnl"]) == pytest.approx([10.0 - 0.21 - 0.2, -10.0 - 0.105 + 0.1])
    assert list(trades["fees"]) == pytest.approx([0.21, 0.105])
    assert metrics.win_rate(trades) == 0.5


def test_a_later_entry_replaces_an_unclosed_one() -> None:
    fills = _fills(
        ("BTC/USDT", 0, "buy", "entry", 1.0, 100.0, 0.1, 0.0, 0.0),
        ("BTC/USDT", 1, "sell", "entry", 3.0, 105.0, 0.1, 0.0, 0.0),
        ("BTC/USDT", 2, "buy", "exit", 3.0, 101.0, 0.1, 12.0, 0.0),
    )
    trades = trades_from_fills(fills)
    assert len(trades) == 1
    assert trades.iloc[0]["direction"] == -1
    assert trades.iloc[0]["quantity"] == 3.0


def test_no_closed_trade_gives_an_empty_frame_with_the_columns() -> None:
    for fills in (fills_frame([]), FILLS.iloc[:2]):
        trades = trades_from_fills(fills)
        assert trades.empty
        assert list(trades.columns) == TRADE_COLUMNS
    assert set(metrics.TRADE_COLUMNS) <= set(TRADE_COLUMNS)  # what the metrics read is always there


def test_backtest_results_pair_their_fills_the_same_way() -> None:
    equity = pd.Series([1000.0, 1001.0], index=pd.DatetimeIndex([T, T + H]))
    result = BacktestResult("a", equity, FILLS, equity * 0, 1000.0)
    pd.testing.assert_frame_equal(result.trades, trades_from_fills(FILLS))
