"""The `arena` command as a user runs it: exit codes, JSON output, run folders and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from arena_lib.cli.main import app
from arena_lib.data.sample import load_sample

runner = CliRunner()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """A CSV cut from the real BTC sample (a fixture built from real bars, in the user-data format)."""
    frame = load_sample("BTC/USDT", "1h", "2024-01-01", "2024-03-31")
    path = tmp_path / "btc_1h.csv"
    out = frame.reset_index()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False)
    return path


def test_data_check_passes_a_clean_file(small_csv: Path) -> None:
    code, out = _invoke("data", "check", str(small_csv), "--timeframe", "1h")
    assert code == 0, out
    assert "quality OK" in out


def test_data_check_fails_and_names_bad_rows(small_csv: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(small_csv)
    frame.loc[10, "high"] = frame.loc[10, "low"] - 1.0  # high < low
    frame.loc[20, "close"] = -5.0  # negative price
    bad = tmp_path / "bad_1h.csv"
    frame.to_csv(bad, index=False)
    code, out = _invoke("data", "check", str(bad), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    issues = report["files"][str(bad)]["issues"]
    rows = {(i["kind"], i["row"]) for i in issues}
    assert any(row == 10 for _, row in rows), rows
    assert any(row == 20 for _, row in rows), rows


def test_data_check_missing_file_is_a_clear_failure(tmp_path: Path) -> None:
    code, out = _invoke("data", "check", str(tmp_path / "nope.csv"))
    assert code == 1
    assert "nope.csv" in out


def test_backtest_json_and_run_folder(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    code, out = _invoke(
        "backtest",
        "--agent",
        "sma_cross",
        "-p",
        "fast=12",
        "-p",
        "slow=48",
        "--symbol",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--start",
        "2024-01-01",
        "--end",
        "2024-03-31",
        "--fee-bps",
        "5",
        "--slippage-bps",
        "2",
        "--fill",
        "next_open",
        "--json",
        "--out",
        str(out_dir),
    )
    assert code == 0, out
    payload = json.loads(out.strip().splitlines()[-1])
    for key in ("final_equity", "total_return", "trades", "sharpe", "max_drawdown"):
        assert key in payload
    assert payload["trades"] > 0
    assert payload["final_equity"] == pytest.approx(10_000 * (1 + payload["total_return"]))
    for name in ("equity.parquet", "fills.parquet", "trades.parquet", "metrics.json", "spec.json", "report.html"):
        assert (out_dir / name).is_file(), name
    assert (out_dir / "plotly.min.js").is_file()  # the HTML report opens offline
    trades = pd.read_parquet(out_dir / "trades.parquet")
    assert len(trades) == payload["trades"]


def test_backtest_batch_path_matches_step_path(tmp_path: Path) -> None:
    args = [
        "backtest",
        "--agent",
        "momentum",
        "-p",
        "window=48",
        "--symbol",
        "ETH/USDT",
        "--start",
        "2024-01-01",
        "--end",
        "2024-02-29",
        "--json",
    ]
    code1, out1 = _invoke(*args, "--out", str(tmp_path / "a"))
    code2, out2 = _invoke(*args, "--batch", "--out", str(tmp_path / "b"))
    assert code1 == 0, out1
    assert code2 == 0, out2
    a, b = json.loads(out1.strip().splitlines()[-1]), json.loads(out2.strip().splitlines()[-1])
    assert a["final_equity"] == b["final_equity"]
    assert a["trades"] == b["trades"]


def test_backtest_on_user_file(small_csv: Path, tmp_path: Path) -> None:
    code, out = _invoke(
        "backtest",
        "--agent",
        "buy_and_hold",
        "--data",
        str(small_csv),
        "--timeframe",
        "1h",
        "--json",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["final_equity"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "nosuch", "--symbol", "BTC/USDT"], "unknown agent"),
        (["--agent", "sma_cross", "--symbol", "NOPE/USDT"], "available symbols"),
        (["--agent", "sma_cross", "--symbol", "BTC/USDT", "--timeframe", "7m"], "timeframe"),
        (["--agent", "sma_cross", "--symbol", "BTC/USDT", "--start", "2024-05-01", "--end", "2024-01-01"], "before"),
        (["--agent", "sma_cross", "--symbol", "BTC/USDT", "-p", "fast=abc"], "not a valid"),
        (["--agent", "sma_cross", "--symbol", "BTC/USDT", "-p", "speed=3"], "unknown parameter"),
        (["--agent", "sma_cross", "--symbol", "BTC/USDT", "--fill", "later"], "fill"),
        (["--agent", "sma_cross", "--data", "/nonexistent/file.csv"], "file.csv"),
        (["--agent", "sma_cross"], "--symbol"),
    ],
)
def test_backtest_bad_input_gives_a_clear_error(args: list[str], message: str) -> None:
    code, out = _invoke("backtest", *args)
    assert code == 2, out
    assert message in out


def test_agents_lists_the_baselines() -> None:
    code, out = _invoke("agents")
    assert code == 0
    for name in ("buy_and_hold", "sma_cross", "momentum", "mean_reversion"):
        assert name in out
