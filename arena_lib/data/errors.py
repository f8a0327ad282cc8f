"""Errors raised by the data layer.

One small hierarchy, so that callers (notebooks, flows, the CLI) can catch ``DataError`` for "the data is not
usable" and still tell apart *why*: a file or symbol that does not exist, data that failed its quality checks, or
an exchange that refused or failed to answer. Messages are written for a person reading a notebook traceback:
they say what was asked for and what is available instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arena_lib.data.quality import QualityReport


class DataError(Exception):
    """Base class for every data-layer failure (bad file format, unusable frame, ...)."""


class DataNotFoundError(DataError):
    """A file, symbol or timeframe that does not exist; the message lists what is available."""


class DataQualityError(DataError):
    """Data that failed its quality checks; ``report`` holds every issue found, each with its row."""

    def __init__(self, report: QualityReport, context: str = "") -> None:
        self.report = report
        prefix = f"{context}: " if context else ""
        super().__init__(prefix + report.summary())


class DataSourceError(DataError):
    """An exchange (through ccxt) refused the request or kept failing after the allowed retries."""
