"""`retrain`: scheduled walk-forward retraining; the new model is a `candidate` and replaces `paper` only if it wins.

Each run trains the notebook's model on the latest `train_days` of data (a rolling window: the walk-forward step of
a live system; the data is the sample extended by what the hourly `ingest` cached, `arena_lib.data.history`),
registers it as `<model>@candidate`, and then asks the promotion gates whether it may take `paper`,
with one more check than a first promotion: it must beat, on the same out-of-sample Sharpe, the version holding
`paper` now (`beats_paper`). A trading job whose config lists both aliases (`configs/arena.paper.yaml`) trades the
candidate on paper beside the incumbent, so the two build a live record side by side whatever the verdict.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from arena_lib.data.history import latest_bar
from arena_lib.data.resample import to_utc_timestamp
from flows.research import research
from flows.validate_and_promote import GateFailedError, validate_and_promote


@flow(name="retrain")
def retrain(
    notebook: str = "notebooks/20_train_xgboost.ipynb",
    registered_model: str = "arena_xgboost",
    symbols: list[str] | None = None,
    timeframe: str = "1h",
    train_days: int = 365,
    end: str | None = None,
    parameters: dict[str, Any] | None = None,
    gates: str | None = None,
) -> dict[str, Any]:
    """Train on the `train_days` before `end` (default: the latest bar), register `candidate`, promote if it wins.

    Returns the candidate's run and version, whether it took `paper`, and the failed checks when it did not. A
    candidate that loses is not an error: the flow completes, and the validate_and_promote subflow shows the
    failure in Prefect with each failed check.
    """
    if train_days < 30:
        raise ValueError(f"train_days must be at least 30 for a walk-forward fit, got {train_days}")
    chosen = list(symbols or ["BTC/USDT", "ETH/USDT", "SOL/USDT"])
    stop = to_utc_timestamp(end, "end") if end else latest_bar(chosen, timeframe)
    start = stop - pd.Timedelta(days=train_days)
    params = {
        **(parameters or {}),
        "symbols": chosen,
        "timeframe": timeframe,
        "start": start.isoformat(),
        "end": stop.isoformat(),
        "registered_model": registered_model,
        "alias": "candidate",
    }
    trained = research(notebook, params)
    log = get_run_logger()
    outcome: dict[str, Any] = {"run_id": trained["run_id"], "window": [params["start"], params["end"]]}
    try:
        promoted = validate_and_promote(
            trained["run_id"], alias="paper", registered_model=registered_model, gates=gates, must_beat="paper"
        )
    except GateFailedError as exc:
        log.warning("candidate stays a candidate: %s", exc)
        return {**outcome, "promoted": False, "reason": str(exc)}
    return {**outcome, "promoted": True, "version": promoted["version"], "previous": promoted["previous"]}
