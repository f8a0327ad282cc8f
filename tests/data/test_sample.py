"""The bundled real sample: symbols, timeframes, windows, funding, hashing, and its manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from arena_lib.data import (
    SAMPLE_DIR,
    DataNotFoundError,
    DataQualityError,
    available_symbols,
    available_timeframes,
    frame_hash,
    load_sample,
    load_sample_funding,
    normalize_symbol,
    sample_dir,
)
from arena_lib.data.sample import DEFAULT_SAMPLE_DIR

SIX = ["ADA/USDT", "BTC/USDT", "DOGE/USDT", "ETH/USDT", "SOL/USDT", "XRP/USDT"]


def test_symbols_and_timeframes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARENA_DATA_DIR", raising=False)
    assert sample_dir() == DEFAULT_SAMPLE_DIR == Path(__file__).resolve().parents[2] / "data" / "sample"
    assert available_symbols("1h") == SIX
    assert available_symbols("1d") == SIX
    assert available_symbols("4h") == []
    assert available_timeframes() == ["1h", "1d"]


def test_symbol_spellings_and_frame_format() -> None:
    frames = [load_sample(s, "1d", "2024-01-01", "2024-01-31") for s in ("BTC/USDT", "BTC-USDT", "BTC", "btc")]
    for frame in frames[1:]:
        pdt.assert_frame_equal(frame, frames[0])
    frame = frames[0]
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.tz) == "UTC"
    assert frame.index.name == "timestamp"
    assert frame.index.is_monotonic_increasing
    assert frame.index.is_unique
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert (frame.dtypes == np.float64).all()
    assert normalize_symbol("eth_usdt") == "ETH/USDT"
    assert normalize_symbol("BTC/USDT:USDT") == "BTC/USDT"


def test_known_real_prices() -> None:
    daily = load_sample("BTC", "1d")
    assert daily.loc["2024-01-01", "open"].item() == 42283.58
    assert daily.loc["2023-01-01", "open"].item() == pytest.approx(16541.8, abs=0.05)
    assert daily.loc["2020-03-13", "low"].item() == 3782.13
    assert daily.loc["2021-11-10", "high"].item() == 69000.0


def test_window_is_inclusive_and_naive_times_are_utc() -> None:
    frame = load_sample("ETH", "1h", start="2024-02-01 00:00", end=pd.Timestamp("2024-02-01T05:00Z"))
    assert len(frame) == 6
    assert frame.index[0] == pd.Timestamp("2024-02-01T00:00Z")
    assert frame.index[-1] == pd.Timestamp("2024-02-01T05:00Z")
    assert load_sample("SOL", "1h").index[0] == pd.Timestamp("2022-01-01T00:00Z")


def test_returned_frames_are_independent_copies() -> None:
    first = load_sample("XRP", "1d")
    first.iloc[0, 0] = -1.0
    assert load_sample("XRP", "1d").iloc[0, 0] > 0


def test_unknown_symbol_and_timeframe_list_what_exists() -> None:
    with pytest.raises(DataNotFoundError, match=r"'PEPE'.*available symbols: ADA/USDT, BTC/USDT, DOGE/USDT"):
        load_sample("PEPE")
    with pytest.raises(DataNotFoundError, match=r"'4h'; available timeframes: 1d, 1h.*resample_ohlcv"):
        load_sample("BTC", "4h")


def test_start_after_end_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match=r"start 2024-02-01T00:00:00\+00:00 is after end 2024-01-01T00:00:00\+00:00"):
        load_sample("BTC", "1h", start="2024-02-01", end="2024-01-01")


def test_funding() -> None:
    btc = load_sample_funding("BTC/USDT")
    assert btc.name == "funding_rate"
    assert btc.dtype == np.float64
    assert str(btc.index.tz) == "UTC"
    assert btc.index.name == "timestamp"
    assert btc.index[0] == pd.Timestamp("2022-01-01T00:00Z")
    assert (btc.index.to_series().diff().dropna() == pd.Timedelta(hours=8)).all()
    assert btc.abs().max() < 0.01  # a per-8h rate as a fraction, not percent
    assert len(load_sample_funding("ETH", start="2024-01-01", end="2024-01-01T16:00")) == 3
    sol = load_sample_funding("SOL")
    assert sol.empty
    assert sol.dtype == np.float64
    assert str(sol.index.tz) == "UTC"
    with pytest.raises(DataNotFoundError, match="not in the sample"):
        load_sample_funding("PEPE")


def test_frame_hash_is_stable_across_processes_and_sensitive_to_content() -> None:
    frame = load_sample("BTC", "1d", "2024-01-01", "2024-03-31")
    digest = frame_hash(frame)
    code = (
        "from arena_lib.data import load_sample, frame_hash;"
        "print(frame_hash(load_sample('BTC', '1d', '2024-01-01', '2024-03-31')))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == digest
    assert len(digest) == 64
    as_us = frame.copy()
    as_us.index = as_us.index.as_unit("us")
    assert frame_hash(as_us) == digest
    changed = frame.copy()
    changed.iloc[10, 3] += 0.01
    assert frame_hash(changed) != digest
    assert frame_hash(frame.iloc[1:]) != digest
    assert frame_hash(frame.rename(columns={"close": "c"})) != digest
    assert frame_hash(load_sample_funding("BTC")) != frame_hash(load_sample_funding("ETH"))


def test_import_does_not_load_ccxt() -> None:
    code = "import sys, arena_lib.data; print('ccxt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_env_var_points_at_another_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(SAMPLE_DIR / "binance_SOL-USDT_1d.parquet", tmp_path)
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path))
    assert sample_dir() == tmp_path.resolve()
    assert available_symbols("1d") == ["SOL/USDT"]
    assert available_symbols("1h") == []
    assert len(load_sample("SOL", "1d")) == 1974


def test_a_corrupted_copy_fails_its_quality_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.read_parquet(SAMPLE_DIR / "binance_ADA-USDT_1d.parquet")
    frame.iloc[100, frame.columns.get_loc("high")] = frame["low"].iloc[100] / 2
    frame.to_parquet(tmp_path / "binance_ADA-USDT_1d.parquet")
    monkeypatch.setenv("ARENA_DATA_DIR", str(tmp_path))
    with pytest.raises(DataQualityError, match="high_below_low row 100") as info:
        load_sample("ADA", "1d")
    assert info.value.report.errors[0].timestamp == frame.index[100]


def test_manifest_matches_the_files() -> None:
    manifest = json.loads((SAMPLE_DIR / "MANIFEST.json").read_text())
    files = {entry["file"]: entry for entry in manifest["files"]}
    on_disk = {p.name for p in SAMPLE_DIR.glob("*.parquet")}
    assert set(files) == on_disk
    assert len(on_disk) == 14
    total = 0
    for name, entry in files.items():
        path = SAMPLE_DIR / name
        total += path.stat().st_size
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], name
        frame = pd.read_parquet(path)
        assert len(frame) == entry["rows"]
        assert frame.index[0] == pd.Timestamp(entry["first"])
        assert frame.index[-1] == pd.Timestamp(entry["last"])
    assert total <= 15 * 1024 * 1024
