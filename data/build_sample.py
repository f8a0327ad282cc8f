"""Build the offline sample in ``data/sample/`` from the real Binance downloads in ``../shared/data/``.

Why a script and not a hand-made copy: the sample is committed, so anyone must be able to check that it is an
exact, unfilled subset of the source files and rebuild it byte for byte. This script only selects rows and
converts gzip CSV to zstd parquet; it never fills gaps, sorts, deduplicates or alters a value. It uses only the
standard library plus pandas/pyarrow (no ``arena_lib`` import), so it runs even when the library is broken.

Usage (from the repository root)::

    .venv/bin/python data/build_sample.py                # reads ../shared/data, writes data/sample
    .venv/bin/python data/build_sample.py --source DIR   # another folder with the same file names
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "data" / "sample"

BASES = ("BTC", "ETH", "SOL", "XRP", "DOGE", "ADA")
FUNDING_BASES = ("BTC", "ETH")
START = pd.Timestamp("2022-01-01T00:00:00Z")
OHLCV_COLUMNS = ["open", "high", "low", "close", "volume"]
MAX_TOTAL_BYTES = 15 * 1024 * 1024


def _read_csv(path: Path, value_columns: list[str]) -> pd.DataFrame:
    """Read one source file exactly as it is: ISO-8601 UTC timestamps, float64 values, file order kept."""
    if not path.is_file():
        raise SystemExit(f"missing source file: {path}")
    frame = pd.read_csv(path, dtype={c: "float64" for c in value_columns})
    expected = ["timestamp", *value_columns]
    if list(frame.columns) != expected:
        raise SystemExit(f"{path.name}: expected columns {expected}, got {list(frame.columns)}")
    index = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True, format="ISO8601")).as_unit("ns")
    out = frame[value_columns].set_axis(index.rename("timestamp"), axis=0)
    return out


def _write(frame: pd.DataFrame, out_dir: Path, name: str) -> dict[str, object]:
    """Write one parquet file (zstd) and return its manifest entry."""
    path = out_dir / name
    frame.to_parquet(path, engine="pyarrow", compression="zstd", index=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    index = frame.index
    return {
        "file": name,
        "rows": len(frame),
        "first": index[0].strftime("%Y-%m-%dT%H:%M:%SZ") if len(frame) else None,
        "last": index[-1].strftime("%Y-%m-%dT%H:%M:%SZ") if len(frame) else None,
        "sha256": digest,
    }


def build(source: Path, out_dir: Path) -> list[dict[str, object]]:
    """Build every sample file and MANIFEST.json; return the manifest entries."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = []
    for base in BASES:
        hourly = _read_csv(source / f"binance_{base}-USDT_1h.csv.gz", OHLCV_COLUMNS)
        entries.append(_write(hourly[hourly.index >= START], out_dir, f"binance_{base}-USDT_1h.parquet"))
        daily = _read_csv(source / f"binance_{base}-USDT_1d.csv.gz", OHLCV_COLUMNS)
        entries.append(_write(daily, out_dir, f"binance_{base}-USDT_1d.parquet"))
    for base in FUNDING_BASES:
        name = f"binance-usdm_{base}-USDT-PERP_funding_8h"
        funding = _read_csv(source / f"{name}.csv.gz", ["funding_rate"])
        entries.append(_write(funding[funding.index >= START], out_dir, f"{name}.parquet"))
    manifest = {
        "description": "Offline sample of real Binance market data; built by data/build_sample.py. See data/README.md.",
        "source": "../shared/data (Binance public market data; provenance in data/README.md)",
        "files": entries,
    }
    (out_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the gzip CSV downloads")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default data/sample)")
    args = parser.parse_args(argv)
    entries = build(args.source.resolve(), args.out.resolve())
    total = sum((args.out / str(e["file"])).stat().st_size for e in entries)
    for entry in entries:
        print(f"{entry['file']:<50} {entry['rows']:>7} rows  {entry['first']} -> {entry['last']}")
    print(f"total {total / 1e6:.2f} MB in {len(entries)} files")
    if total > MAX_TOTAL_BYTES:
        print(f"sample is larger than {MAX_TOTAL_BYTES / 1e6:.0f} MB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
