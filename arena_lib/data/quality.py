"""Quality checks for OHLCV frames: gaps, duplicates, bad candles, misaligned or unordered timestamps.

Why: every number the platform reports is only as good as the bars under it. Exchanges have outages (gaps),
downloads get concatenated twice (duplicates), and hand-made CSVs carry typos (high below low, a zero price).
``check_ohlcv`` finds all of these in one vectorized pass and names each bad row by position and timestamp, so the
fix is obvious. It never repairs anything: gaps stay gaps (a real outage is information, an invented bar is a lie),
and the frame is inspected in its raw order.

Severity: gaps are *warnings* (real data has them; the engine must cope); everything else is an *error* that makes
the frame unusable until fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from arena_lib.data.errors import DataQualityError
from arena_lib.data.resample import OHLCV_COLUMNS, infer_timeframe, timeframe_origin_ns, timeframe_to_ns

Severity = Literal["error", "warning"]

# Issue kinds, as constants so that callers can filter without typos.
GAP = "gap"
DUPLICATE = "duplicate_timestamp"
NAN = "nan"
NAT = "nat_timestamp"
NONPOSITIVE_PRICE = "nonpositive_price"
HIGH_BELOW_LOW = "high_below_low"
OPEN_OUTSIDE_RANGE = "open_outside_range"
CLOSE_OUTSIDE_RANGE = "close_outside_range"
OUT_OF_ORDER = "out_of_order"
OFF_BOUNDARY = "off_boundary"
NEGATIVE_VOLUME = "negative_volume"
MISSING_COLUMN = "missing_column"
BAD_INDEX = "bad_index"
EMPTY = "empty"
TIMEFRAME_UNKNOWN = "timeframe_unknown"


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


@dataclass(frozen=True, slots=True)
class QualityIssue:
    """One problem found in one row (``row`` is the 0-based position in the frame as given)."""

    kind: str
    severity: Severity
    row: int | None
    timestamp: pd.Timestamp | None
    detail: str

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "row": self.row,
            "timestamp": _iso(self.timestamp),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Gap:
    """A run of missing bars: open times ``start`` .. ``end`` (inclusive), ``missing`` bars, before row ``row``."""

    start: pd.Timestamp
    end: pd.Timestamp
    missing: int
    row: int

    def to_dict(self) -> dict[str, object]:
        return {"start": _iso(self.start), "end": _iso(self.end), "missing": self.missing, "row": self.row}


@dataclass
class QualityReport:
    """Everything ``check_ohlcv`` found; ``ok`` is true when there is no error (gaps are only warnings)."""

    rows: int
    timeframe: str | None
    issues: list[QualityIssue] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(issue.severity == "error" for issue in self.issues)

    @property
    def errors(self) -> list[QualityIssue]:
        return [issue for issue in self.issues if issue.severity == "error"]

    @property
    def warnings(self) -> list[QualityIssue]:
        return [issue for issue in self.issues if issue.severity == "warning"]

    @property
    def missing_bars(self) -> int:
        return sum(gap.missing for gap in self.gaps)

    def counts(self) -> dict[str, int]:
        """Number of issues per kind, e.g. ``{"gap": 3, "nan": 1}``."""
        out: dict[str, int] = {}
        for issue in self.issues:
            out[issue.kind] = out.get(issue.kind, 0) + 1
        return out

    def summary(self, max_issues: int = 20) -> str:
        """Human-readable text: one headline, then the first ``max_issues`` issues (errors first)."""
        status = "OK" if self.ok else "FAILED"
        head = (
            f"quality {status}: {self.rows} rows, timeframe {self.timeframe or 'unknown'}, "
            f"{len(self.errors)} errors, {len(self.warnings)} warnings"
        )
        if self.gaps:
            head += f" ({len(self.gaps)} gaps, {self.missing_bars} missing bars)"
        ordered = self.errors + self.warnings
        lines = [head]
        for issue in ordered[:max_issues]:
            where = f"row {issue.row}" if issue.row is not None else "frame"
            when = f" at {issue.timestamp.isoformat()}" if issue.timestamp is not None else ""
            lines.append(f"  {issue.severity} {issue.kind} {where}{when}: {issue.detail}")
        if len(ordered) > max_issues:
            lines.append(f"  ... and {len(ordered) - max_issues} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (timestamps as ISO-8601 strings), e.g. to log as a run artifact."""
        return {
            "rows": self.rows,
            "timeframe": self.timeframe,
            "ok": self.ok,
            "counts": self.counts(),
            "missing_bars": self.missing_bars,
            "gaps": [gap.to_dict() for gap in self.gaps],
            "issues": [issue.to_dict() for issue in self.issues],
        }

    def raise_if_failed(self, context: str = "") -> None:
        """Raise ``DataQualityError`` (carrying this report) when there is at least one error."""
        if not self.ok:
            raise DataQualityError(self, context)


class _Collector:
    """Turns boolean row masks into issues; the per-row loop runs only over rows that are actually bad."""

    def __init__(self, stamps: np.ndarray, valid_time: np.ndarray) -> None:
        self.stamps = stamps
        self.valid_time = valid_time
        self.issues: list[QualityIssue] = []

    def timestamp(self, row: int) -> pd.Timestamp | None:
        if not self.valid_time[row]:
            return None
        return pd.Timestamp(int(self.stamps[row]), unit="ns", tz="UTC")

    def add(self, kind: str, severity: Severity, row: int | None, detail: str) -> None:
        ts = self.timestamp(row) if row is not None else None
        self.issues.append(QualityIssue(kind, severity, row, ts, detail))

    def add_mask(self, kind: str, mask: np.ndarray, detail: str | Callable[[int], str]) -> None:
        """Add one error per true row; ``detail`` is a string or a callable(row) -> string."""
        for row in np.flatnonzero(mask):
            text = detail(int(row)) if callable(detail) else str(detail)
            self.add(kind, "error", int(row), text)


def check_ohlcv(df: pd.DataFrame, timeframe: str | None = None) -> QualityReport:
    """Check an OHLCV frame and report every problem with its row; nothing is modified or repaired.

    ``timeframe`` (``'1h'``, ``'1d'``, ...) enables the gap and bar-boundary checks; when ``None`` it is inferred
    from the median bar spacing. Checks: gaps (warning; start, end and count of missing bars), duplicate
    timestamps, NaN values, zero or negative prices, high < low, open or close outside [low, high], rows out of
    order, timestamps off the bar boundary, negative volume.
    """
    rows = len(df)
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    index = df.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        detail = "index must be a tz-aware UTC DatetimeIndex of bar open times, got " + (
            "a tz-naive DatetimeIndex" if isinstance(index, pd.DatetimeIndex) else type(index).__name__
        )
        report = QualityReport(rows=rows, timeframe=timeframe)
        report.issues.append(QualityIssue(BAD_INDEX, "error", None, None, detail))
        for name in missing:
            report.issues.append(QualityIssue(MISSING_COLUMN, "error", None, None, f"column {name!r} is missing"))
        return report

    utc_index = index.tz_convert("UTC").as_unit("ns")
    valid_time = ~np.asarray(utc_index.isna())
    stamps = utc_index.asi8.copy()
    if timeframe is None:
        timeframe = infer_timeframe(utc_index[valid_time])
    report = QualityReport(rows=rows, timeframe=timeframe)
    collector = _Collector(stamps, valid_time)

    for name in missing:
        collector.add(MISSING_COLUMN, "error", None, f"column {name!r} is missing; expected {list(OHLCV_COLUMNS)}")
    if rows == 0:
        collector.add(EMPTY, "warning", None, "frame has no rows")
        report.issues = collector.issues
        return report

    collector.add_mask(NAT, ~valid_time, "timestamp is missing (NaT)")
    _check_values(df, collector, [c for c in OHLCV_COLUMNS if c in df.columns])
    _check_time(report, collector, timeframe)
    report.issues = collector.issues
    return report


def _outside_detail(name: str, v: np.ndarray, low: np.ndarray, high: np.ndarray) -> Callable[[int], str]:
    def detail(r: int) -> str:
        return f"{name} {v[r]:g} outside [low {low[r]:g}, high {high[r]:g}]"

    return detail


def _check_values(df: pd.DataFrame, collector: _Collector, present: list[str]) -> None:
    values = {c: pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64) for c in present}
    if present:
        matrix = np.column_stack([values[c] for c in present])
        nan = np.isnan(matrix)

        def nan_detail(row: int) -> str:
            cols = [present[j] for j in np.flatnonzero(nan[row])]
            return f"NaN or non-numeric value in {', '.join(cols)}"

        collector.add_mask(NAN, np.asarray(nan.any(axis=1)), nan_detail)

    prices = [c for c in ("open", "high", "low", "close") if c in values]
    if prices:
        price_matrix = np.column_stack([values[c] for c in prices])
        bad_price = price_matrix <= 0

        def price_detail(row: int) -> str:
            return ", ".join(f"{prices[j]}={price_matrix[row, j]:g}" for j in np.flatnonzero(bad_price[row])) + (
                " (prices must be > 0)"
            )

        collector.add_mask(NONPOSITIVE_PRICE, np.asarray(bad_price.any(axis=1)), price_detail)

    if "high" in values and "low" in values:
        high, low = values["high"], values["low"]
        collector.add_mask(HIGH_BELOW_LOW, high < low, lambda r: f"high {high[r]:g} < low {low[r]:g}")
        for name, kind in (("open", OPEN_OUTSIDE_RANGE), ("close", CLOSE_OUTSIDE_RANGE)):
            if name in values:
                v = values[name]
                outside = ((v < low) | (v > high)) & ~(high < low)
                collector.add_mask(kind, outside, _outside_detail(name, v, low, high))

    if "volume" in values:
        volume = values["volume"]
        collector.add_mask(NEGATIVE_VOLUME, volume < 0, lambda r: f"volume {volume[r]:g} < 0")


def _check_time(report: QualityReport, collector: _Collector, timeframe: str | None) -> None:
    stamps, valid = collector.stamps, collector.valid_time
    positions = np.flatnonzero(valid)
    s = stamps[positions]
    if len(s) == 0:
        return

    # Duplicates: every repeat of an earlier timestamp is named, with the row it repeats.
    _, first_idx, inverse = np.unique(s, return_index=True, return_inverse=True)
    first_pos = positions[first_idx[inverse]]
    dup = first_pos != positions
    for k in np.flatnonzero(dup):
        collector.add(DUPLICATE, "error", int(positions[k]), f"same timestamp as row {int(first_pos[k])}")

    # Out of order: a row whose timestamp is earlier than the row before it.
    if len(s) > 1:
        back = np.flatnonzero(s[1:] < s[:-1]) + 1
        for k in back:
            prev = pd.Timestamp(int(s[k - 1]), unit="ns", tz="UTC")
            collector.add(
                OUT_OF_ORDER, "error", int(positions[k]), f"earlier than the previous row ({prev.isoformat()})"
            )

    if timeframe is None:
        if len(s) > 1:
            collector.add(TIMEFRAME_UNKNOWN, "warning", None, "timeframe unknown: gap and boundary checks skipped")
        return
    step = timeframe_to_ns(timeframe)
    origin = timeframe_origin_ns(timeframe)
    off = (s - origin) % step != 0
    for k in np.flatnonzero(off):
        collector.add(OFF_BOUNDARY, "error", int(positions[k]), f"not on a {timeframe} bar boundary")

    # Gaps: measured on the sorted, de-duplicated timestamps so that disorder does not fake or hide a gap.
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    keep = np.r_[True, sorted_s[1:] != sorted_s[:-1]]
    uniq, uniq_pos = sorted_s[keep], positions[order[keep]]
    diffs = np.diff(uniq)
    for k in np.flatnonzero(diffs > step):
        missing = int((diffs[k] - 1) // step)
        if missing <= 0:
            continue
        start = pd.Timestamp(int(uniq[k] + step), unit="ns", tz="UTC")
        end = pd.Timestamp(int(uniq[k] + missing * step), unit="ns", tz="UTC")
        row = int(uniq_pos[k + 1])
        report.gaps.append(Gap(start=start, end=end, missing=missing, row=row))
        collector.add(
            GAP, "warning", row, f"{missing} missing {timeframe} bars {start.isoformat()} -> {end.isoformat()}"
        )
