"""A throwaway MLflow store and one small trained model for the promotion tests.

Creating an MLflow sqlite store runs its migrations (seconds), so the package shares one store; each test uses
registered-model names of its own, so aliases never leak between tests. `ARENA_HOME` points at a temporary
folder, so runs log no provenance of the real checkout and `configs/gates.yaml` defaults resolve there.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from arena_lib.data.sample import load_sample, load_sample_funding
from arena_lib.models.estimators import Model, ModelSpec
from arena_lib.research.dataset import make_dataset
from arena_lib.research.training import fit_final
from arena_lib.workflow import tracking
from arena_lib.workflow.promotion import Gates
from arena_lib.workflow.tracking import register_trained_model
from tests.tool_homes import MLFLOW_ENV, redirect_tool_homes, reset_mlflow

EXPERIMENT = "promotion-tests"
# Own-bar features plus ones that read BTC's bars and the funding rate, so the look-ahead gate must pass context.
FEATURES = ("ret_1", "ret_24", "vol_cc_24", "rsi_14", "corr_btc_72", "funding_mean_3")

PASSING_VALIDATION: dict[str, float] = {
    "oos_trades": 60.0,
    "wf_oos_sharpe": 1.4,
    "best_baseline_oos_sharpe": 0.6,
    "pbo": 0.2,
    "deflated_sharpe": 0.97,
    "wf_oos_max_drawdown": -0.12,
}
"""Strategy-validation metrics that clear `gates()`'s thresholds."""

_names = itertools.count()


@pytest.fixture(scope="package", autouse=True)
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("promotion-store")
    with pytest.MonkeyPatch.context() as mp:
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        mp.setenv("ARENA_HOME", str(root))
        (root / "mlruns").mkdir()
        redirect_tool_homes(mp, root / "homes")
        yield root
        reset_mlflow()


@pytest.fixture(scope="package")
def trained() -> tuple[Model, pd.DataFrame]:
    """A 10-tree XGBoost model on three weeks of ETH/USDT (with BTC and funding context), and its example rows."""
    start, end = "2024-01-01", "2024-01-21"
    frames = {"ETH/USDT": load_sample("ETH/USDT", "1h", start, end)}
    btc = load_sample("BTC/USDT", "1h", start, end)
    funding = {"ETH/USDT": load_sample_funding("ETH/USDT", "2023-12-31", end)}
    dataset = make_dataset(frames, FEATURES, horizon=4, btc=btc, funding=funding)
    model = fit_final(ModelSpec(kind="xgboost", params={"n_estimators": 10, "max_depth": 2}), dataset)
    return model, dataset.X.iloc[:20]


def unique_name(prefix: str) -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}_{next(_names)}"


RunFactory = Callable[..., str]


@pytest.fixture
def make_run(trained: tuple[Model, pd.DataFrame]) -> RunFactory:
    """Log a run with `metrics` (and params/tags); with `model=NAME` it also registers the model as NAME@candidate."""

    def factory(
        metrics: Mapping[str, float],
        *,
        model: str | tuple[str, ...] | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        names = (model,) if isinstance(model, str) else tuple(model or ())
        with tracking.start_run(EXPERIMENT, params=params, tags=tags) as run:
            tracking.log_metrics(metrics)
            for name in names:
                register_trained_model(trained[0], trained[1], name, alias="candidate")
        return str(run.info.run_id)

    return factory


def gates(**overrides: Any) -> Gates:
    """Gates with every gate on (look-ahead off unless asked for: it has its own test), then `overrides`."""
    settings: dict[str, Any] = {
        "version": 1,
        "min_oos_trades": 30,
        "min_sharpe_margin": 0.1,
        "max_pbo": 0.5,
        "min_deflated_sharpe": 0.9,
        "max_drawdown": -0.3,
        "lookahead": None,
        "llm_cutoff": True,
        "min_paper_days": 14,
    }
    return Gates.model_validate({**settings, **overrides})


def write_gates(path: Path, **overrides: Any) -> Path:
    """`gates(**overrides)` as a YAML file at `path`."""
    path.write_text(yaml.safe_dump(gates(**overrides).model_dump(mode="json"), sort_keys=False))
    return path
