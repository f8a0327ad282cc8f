"""The `sweep` flow under Prefect's test harness, and the pure sweep functions it calls.

The flows run on real Dask clusters of thread workers (in-process, so a test costs seconds, not worker start-ups);
the process cluster that `run_sweep` starts by default is exercised by `tests/test_benchmarks_sweep_smoke.py`.
Every cell is cross-checked against a direct `run_batch` of the same variant, window and costs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from arena_lib.agents.registry import make_agent
from arena_lib.core.config import BacktestConfig, CostModel
from arena_lib.data.history import load_market
from arena_lib.engine.kernel import run_batch
from arena_lib.research.sweep import (
    CELL_METRICS,
    Window,
    dealt_chunks,
    plan_tasks,
    resolve_windows,
    results_frame,
    sweep_summary,
    sweep_variants,
    window_summary,
)
from tests.tool_homes import MLFLOW_ENV, reset_mlflow

GRID = {"fast": [6, 12], "slow": [48, 96]}
COSTS = {"fee_bps": 10.0, "slippage_bps": 5.0}


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway MLflow sqlite store (and ARENA_HOME), so sweep runs never reach the project's `mlruns/`."""
    root = tmp_path_factory.mktemp("sweep-mlflow")
    (root / "mlruns").mkdir()
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for name in MLFLOW_ENV:
            mp.delenv(name, raising=False)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("ARENA_HOME", str(root))
        yield uri
        reset_mlflow()


@pytest.fixture(scope="module", autouse=True)
def _close_kept_clusters() -> Iterator[None]:
    """Stop the clusters `run_sweep` keeps before pytest closes the log streams their shutdown writes to."""
    from flows.sweep import close_local_clusters

    yield
    close_local_clusters()


def _direct_metrics(params: dict[str, Any], start: str, end: str) -> dict[str, float]:
    """The same cell, run without the flow: load the window, build the agent, run the batch kernel."""
    market = load_market(["BTC/USDT"], "1h", start, end)
    config = BacktestConfig(symbols=("BTC/USDT",), timeframe="1h", costs=CostModel(**COSTS))
    result = run_batch(make_agent("sma_cross", params), market, config)  # type: ignore[arg-type]
    return {**result.metrics, "bars": market.n_bars, "fill_rejections": result.meta["fill_rejections"]}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# ---------------------------------------------------------------------------------------------------- the flow
@pytest.mark.usefixtures("prefect_harness")
def test_sweep_rows_equal_direct_run_batch_and_land_in_mlflow(mlflow_store: str, tmp_path: Path) -> None:
    from arena_lib.workflow import tracking
    from flows.sweep import run_sweep

    result = run_sweep(
        "sma_cross",
        GRID,
        symbols=["BTC/USDT"],
        windows=2,
        start="2024-01-01",
        end="2024-06-30",
        costs=COSTS,
        n_workers=2,
        processes=False,
        experiment="sweep-tests",
    )
    cells = result.cells
    assert len(cells) == 4 * 2
    assert list(cells["window"]) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert list(cells["variant"][:4]) == ["fast=6,slow=48", "fast=6,slow=96", "fast=12,slow=48", "fast=12,slow=96"]
    assert result.tasks >= 2
    assert cells["trades"].min() > 0, "every cell should trade in half a year of hourly bars"
    # Consecutive windows of the range: they touch without overlapping and cover it.
    assert cells["window_start"].iloc[0] == "2024-01-01T00:00:00+00:00"
    assert cells["window_end"].iloc[-1] == "2024-06-30T00:00:00+00:00"
    assert pd.Timestamp(cells["window_start"].iloc[4]) - pd.Timestamp(cells["window_end"].iloc[0]) == pd.Timedelta("1h")

    for _, row in cells.iterrows():
        direct = _direct_metrics({"fast": row["fast"], "slow": row["slow"]}, row["window_start"], row["window_end"])
        mismatched = [k for k in CELL_METRICS if not _same(float(row[k]), float(direct[k]))]
        assert not mismatched, (row["variant"], row["window"], mismatched)

    # The per-window summary and the best variant follow from the cells.
    windows = result.windows
    for w, part in cells.groupby("window"):
        assert windows.loc[w, "best_variant"] == part.loc[part["sharpe"].idxmax(), "variant"]
    assert windows.loc[1, "oos_variant"] == windows.loc[0, "best_variant"]
    chosen = cells[(cells["window"] == 1) & (cells["variant"] == windows.loc[0, "best_variant"])]
    assert windows.loc[1, "oos_sharpe"] == chosen["sharpe"].iloc[0]
    assert result.summary["wf_oos_sharpe_mean"] == windows.loc[1, "oos_sharpe"]
    mean_sharpe = cells.groupby("variant")["sharpe"].mean()
    assert result.best_variant == mean_sharpe.idxmax()
    assert result.best_params == {k: int(v) for k, v in (p.split("=") for p in result.best_variant.split(","))}

    # One MLflow run holds the inputs, the summary and the full table.
    assert result.mlflow_run_id is not None
    run = tracking.client().get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["agent"] == "sma_cross"
    assert run.data.params["grid.fast"] == "[6, 12]"
    assert run.data.params["windows"].startswith('[["2024-01-01T00:00:00+00:00"')
    assert run.data.params["costs.fee_bps"] == "10.0"
    assert run.data.tags["sweep.best_variant"] == result.best_variant
    assert run.data.metrics["best_mean_sharpe"] == pytest.approx(mean_sharpe.max())
    assert run.data.metrics["cells"] == 8
    local = tracking.client().download_artifacts(result.mlflow_run_id, "sweep_results.csv", str(tmp_path))
    logged = pd.read_csv(local, index_col=0)
    assert len(logged) == 8
    assert np.allclose(logged["sharpe"].to_numpy(), cells["sharpe"].to_numpy(), rtol=1e-12, equal_nan=True)


@pytest.mark.usefixtures("prefect_harness")
def test_run_sweep_keeps_its_local_cluster_for_the_next_sweep(mlflow_store: str) -> None:
    from flows import sweep as sweep_module

    sweep_module.close_local_clusters()
    small = {"symbols": ["BTC/USDT"], "windows": 1, "start": "2024-01-01", "end": "2024-01-10", "track": False}
    first = sweep_module.run_sweep("sma_cross", GRID, n_workers=2, processes=False, **small)
    kept = dict(sweep_module._SHARED)
    assert len(kept) == 1
    assert next(iter(kept))[:2] == (2, False)
    second = sweep_module.run_sweep("sma_cross", GRID, n_workers=2, processes=False, **small)
    assert kept == sweep_module._SHARED  # the same cluster served the second sweep
    assert second.cells.equals(first.cells)
    once = sweep_module.run_sweep("sma_cross", GRID, n_workers=1, processes=False, reuse_cluster=False, **small)
    assert once.cells.equals(first.cells)
    assert kept == sweep_module._SHARED  # a per-run cluster is not kept
    cluster = next(iter(kept.values()))
    sweep_module.close_local_clusters()
    assert sweep_module._SHARED == {}
    assert cluster.status.name == "closed"
    with pytest.raises(ValueError, match="n_workers must be at least 1"):
        sweep_module.shared_local_cluster(0)


@pytest.mark.usefixtures("prefect_harness")
def test_run_sweep_works_where_an_event_loop_is_running_as_in_a_notebook() -> None:
    """A Jupyter kernel calls `run_sweep` from code that runs inside an asyncio loop; the flow itself is async."""
    from flows.sweep import run_sweep

    small = {"symbols": ["BTC/USDT"], "windows": 1, "start": "2024-01-01", "end": "2024-01-10", "track": False}

    async def notebook_cell() -> pd.DataFrame:
        return run_sweep("sma_cross", GRID, n_workers=1, processes=False, **small).cells

    cells = asyncio.run(notebook_cell())
    assert list(cells["variant"]) == ["fast=6,slow=48", "fast=6,slow=96", "fast=12,slow=48", "fast=12,slow=96"]
    assert cells["trades"].notna().all()


@pytest.mark.usefixtures("prefect_harness")
def test_sweep_submits_to_the_scheduler_named_by_arena_dask_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    from flows.sweep import run_sweep

    windows = [["2024-03-01", "2024-03-20"], ["2024-05-01", "2024-05-25"], ["2024-02-01", "2024-02-15"]]
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0") as cluster:
        monkeypatch.setenv("ARENA_DASK_ADDRESS", cluster.scheduler_address)
        grid = {"fast": [4, 8]}
        result = run_sweep("sma_cross", grid, windows=windows, base_params={"slow": 24}, cells_per_task=1, track=False)
        ran = {key for key in cluster.scheduler.task_prefixes}
    assert any("sweep_cells_task" in key for key in ran), ran
    assert result.tasks == 2 * 3  # one cell per task, as asked
    assert len(result.cells) == 6
    assert set(result.cells["slow"]) == {24}
    assert result.mlflow_run_id is None
    # Windows keep the given order; the third starts before the second ends, so it has no out-of-sample score.
    assert list(result.windows["window_start"].str[:10]) == ["2024-03-01", "2024-05-01", "2024-02-01"]
    assert not math.isnan(result.windows.loc[1, "oos_sharpe"])
    assert math.isnan(result.windows.loc[2, "oos_sharpe"])
    assert math.isnan(result.windows.loc[0, "oos_sharpe"])


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize(
    ("agent", "grid", "extra", "message"),
    [
        ("no_such_agent", GRID, {}, "unknown agent 'no_such_agent'"),
        ("sma_cross", {}, {}, "grid is empty"),
        ("sma_cross", {"fast": []}, {}, "have no values"),
        ("sma_cross", {"fast": [6], "speed": [1, 2]}, {}, "unknown parameter(s) ['speed']"),
        ("sma_cross", {"fast": [6, 60], "slow": [48]}, {}, "1 of 2 grid variants are invalid"),
        ("sma_cross", GRID, {"windows": [["2021-01-01", "2021-03-01"]]}, "outside the sample"),
        ("sma_cross", GRID, {"windows": 2, "end": "2030-01-01"}, "outside the sample"),
        ("sma_cross", GRID, {"windows": [["2024-03-01", "2024-02-01"]]}, "must be before end"),
        ("sma_cross", GRID, {"costs": {"fee_bsp": 3.0}}, "fee_bsp"),
    ],
)
def test_bad_input_fails_before_any_task_is_submitted(
    agent: str, grid: dict[str, list[Any]], extra: dict[str, Any], message: str
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.sweep import local_task_runner, sweep

    kwargs = {"windows": 2, "start": "2024-01-01", "end": "2024-02-01", "track": False, **extra}
    if isinstance(kwargs["windows"], list):
        kwargs.pop("start"), kwargs.pop("end")
    flow = sweep.with_options(task_runner=local_task_runner(1, processes=False))  # type: ignore[arg-type]
    state = asyncio.run(flow(agent, grid, return_state=True, **kwargs))  # an async flow: see flows.sweep.sweep
    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, Exception)
    assert message in str(error)
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    assert task_runs == []


def test_task_runner_reads_its_configuration_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.sweep import sweep_task_runner

    monkeypatch.delenv("ARENA_DASK_ADDRESS", raising=False)
    monkeypatch.setenv("ARENA_DASK_WORKERS", "3")
    local = sweep_task_runner()
    assert local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1, "processes": True}
    assert sweep_task_runner(n_workers=1, processes=False).cluster_kwargs["processes"] is False
    monkeypatch.setenv("ARENA_DASK_ADDRESS", "tcp://scheduler:8786")
    assert sweep_task_runner().address == "tcp://scheduler:8786"
    assert sweep_task_runner(address="tcp://other:8786").address == "tcp://other:8786"
    with pytest.raises(ValueError, match="must look like tcp://host:8786"):
        sweep_task_runner(address="scheduler:8786")
    monkeypatch.delenv("ARENA_DASK_ADDRESS")
    monkeypatch.setenv("ARENA_DASK_WORKERS", "two")
    with pytest.raises(ValueError, match=r"'ARENA_DASK_WORKERS': must be a whole number \(got 'two'\)"):
        sweep_task_runner()


# ---------------------------------------------------------------------------------------------------- pure parts
def test_consecutive_windows_split_the_range_into_equal_bar_counts() -> None:
    coverage = load_market(["BTC/USDT"], "1h")
    windows = resolve_windows(3, coverage, "2024-01-01", "2024-01-10 23:00")
    assert [w.index for w in windows] == [0, 1, 2]
    assert windows[0].start == pd.Timestamp("2024-01-01", tz="UTC")
    assert windows[-1].end == pd.Timestamp("2024-01-10 23:00", tz="UTC")
    bars = [load_market(["BTC/USDT"], "1h", *w.bounds()).n_bars for w in windows]
    assert bars == [80, 80, 80]
    for a, b in itertools.pairwise(windows):
        assert b.start - a.end == pd.Timedelta("1h")
    with pytest.raises(ValueError, match="into 200 windows"):
        resolve_windows(200, coverage, "2024-01-01", "2024-01-10")
    with pytest.raises(ValueError, match="leave them out"):
        resolve_windows([["2024-01-01", "2024-02-01"]], coverage, start="2024-01-01")
    with pytest.raises(ValueError, match=r"\[start, end\] pair"):
        resolve_windows([["2024-01-01"]], coverage)
    with pytest.raises(TypeError, match="count or a list"):
        resolve_windows("4", coverage)


def test_variants_are_validated_and_labelled_in_grid_order() -> None:
    v = sweep_variants("sma_cross", {"fast": ["6", 12]}, {"slow": 48, "allow_short": True})
    assert v.labels == ["fast=6", "fast=12"]
    assert v.params == [{"slow": 48, "allow_short": True, "fast": "6"}, {"slow": 48, "allow_short": True, "fast": 12}]
    with pytest.raises(ValueError, match="not a list for \\['fast'\\]"):
        sweep_variants("sma_cross", {"fast": "612"})
    with pytest.raises(ValueError, match="repeats a value"):
        sweep_variants("sma_cross", {"fast": [6, 6]})
    with pytest.raises(ValueError, match="is not a valid int"):
        sweep_variants("sma_cross", {"fast": ["six"]})


def test_dealt_chunks_cover_every_item_once_back_and_forth() -> None:
    assert dealt_chunks(7, 3) == [[0, 5, 6], [1, 4], [2, 3]]
    assert dealt_chunks(2, 5) == [[0], [1]]
    for n_items, n_chunks in [(7, 3), (2, 5), (100, 8), (1, 1)]:
        chunks = dealt_chunks(n_items, n_chunks)
        assert len(chunks) == min(n_items, n_chunks)
        assert sorted(i for c in chunks for i in c) == list(range(n_items))
        assert all(c == sorted(c) and c for c in chunks)
        assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
    with pytest.raises(ValueError):
        dealt_chunks(0, 2)


def test_a_plan_deals_every_cell_once_and_carries_only_the_bars_its_tasks_use() -> None:
    coverage = load_market(["BTC/USDT"], "1h")
    windows = resolve_windows(3, coverage, "2024-01-01", "2024-01-06 23:00")
    markets = [load_market(["BTC/USDT"], "1h", *w.bounds()) for w in windows]
    variants = sweep_variants("sma_cross", {"fast": [4, 6, 8, 12, 16], "slow": [48, 96]})  # 10 variants
    for n_tasks in (1, 2, 4, 30, 100):
        plan = plan_tasks(variants, windows, markets, n_tasks)
        assert len(plan) == min(n_tasks, 30)
        cells = [(g.window.index, label) for groups in plan for g in groups for label in g.labels]
        assert sorted(cells) == sorted(itertools.product(range(3), variants.labels))  # every cell exactly once
        for groups in plan:
            assert len({g.window.index for g in groups}) == len(groups)  # one group per window touched
            for g in groups:
                assert g.market is markets[g.window.index]
                assert g.params == [variants.params[variants.labels.index(label)] for label in g.labels]
        sizes = [sum(len(g.labels) for g in groups) for groups in plan]
        assert max(sizes) - min(sizes) <= 1
    two = plan_tasks(variants, windows, markets, 2)
    assert all(len(groups) == 3 for groups in two)  # with few tasks, each gets a share of every window
    assert all(len(g.labels) == 5 for groups in two for g in groups)
    with pytest.raises(ValueError, match="3 windows but 2 markets"):
        plan_tasks(variants, windows, markets[:2], 2)


@pytest.mark.parametrize("n_chunks", [2, 3, 4, 8])
def test_dealt_chunks_balance_a_grid_whose_cost_alternates(n_chunks: int) -> None:
    # The benchmark's grid ends in allow_short=[False, True]: every other variant costs ~35% more, and short
    # averages cost more than long ones. A plain round-robin into an even number of chunks puts all the dear
    # variants together; dealing back and forth must not.
    cost = np.tile([1.0, 1.35], 100) * np.repeat(np.linspace(2.0, 1.0, 10), 20)
    sums = [cost[c].sum() for c in dealt_chunks(len(cost), n_chunks)]
    assert max(sums) / min(sums) < 1.03
    plain = [cost[k::n_chunks].sum() for k in range(n_chunks)]
    if n_chunks % 2 == 0:
        assert max(plain) / min(plain) > 1.2  # the straggler this avoids


def test_summary_picks_the_best_mean_sharpe_and_scores_the_walk_forward_choice() -> None:
    def row(w: int, variant: str, sharpe: float, ret: float) -> dict[str, Any]:
        start = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=10 * w)
        end = start + pd.Timedelta(days=9)
        where = {"window": w, "window_start": start.isoformat(), "window_end": end.isoformat(), "variant": variant}
        metrics = {"sharpe": sharpe, "total_return": ret, "max_drawdown": -0.1, "trades": 3.0, "bars": 240.0}
        return {**where, **metrics, "fill_rejections": 0.0}

    rows = [row(0, "a", 2.0, 0.1), row(0, "b", 1.0, 0.05), row(1, "a", -1.0, -0.1), row(1, "b", 0.5, 0.02)]
    rows += [row(2, "a", float("nan"), 0.0), row(2, "b", 3.0, 0.2)]
    cells = results_frame(list(reversed(rows)), ["a", "b"])
    assert list(zip(cells["window"], cells["variant"], strict=True)) == [(w, v) for w in range(3) for v in "ab"]
    windows = window_summary(cells)
    assert list(windows["best_variant"]) == ["a", "b", "b"]  # NaN ranks last
    assert list(windows["oos_variant"][1:]) == ["a", "b"]
    assert windows["oos_sharpe"].tolist()[1:] == [-1.0, 3.0]
    best, summary = sweep_summary(cells, windows)
    assert best == "b"  # a's mean Sharpe is NaN-skipping mean 0.5 < b's 1.5
    assert summary["best_mean_sharpe"] == pytest.approx(1.5)
    assert summary["wf_oos_sharpe_mean"] == pytest.approx(1.0)
    assert summary["wf_oos_total_return"] == pytest.approx((1 - 0.1) * (1 + 0.2) - 1)
    assert Window(0, pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-02", tz="UTC")).bounds() == (
        "2024-01-01T00:00:00+00:00",
        "2024-01-02T00:00:00+00:00",
    )
