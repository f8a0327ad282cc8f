"""The kill switch: `arena halt` stops every trading job before its next round, persists across restarts, and
`arena resume` lets a stopped run continue where it stopped, with its ledger whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arena_lib.arena.config import ArenaConfig, RoundSettings
from arena_lib.arena.session import resume_run, start_run
from arena_lib.arena.store import ArenaStore
from arena_lib.cli.main import app
from arena_lib.core.config import BacktestConfig
from arena_lib.core.spec import AgentSpec

cli = CliRunner()
SYMBOLS = ("BTC/USDT", "ETH/USDT")


def _config() -> ArenaConfig:
    return ArenaConfig(
        market=BacktestConfig(symbols=SYMBOLS, timeframe="1h", start="2025-03-01", end="2025-03-01T12:00"),
        rounds=RoundSettings(bars_per_round=1),
        quant=(AgentSpec("sma_cross", {"fast": 3, "slow": 8, "fraction": 0.3}), AgentSpec("buy_and_hold", {})),
        llm=(),
    )


@pytest.fixture
def store(tmp_path: Path) -> ArenaStore:
    return ArenaStore(f"sqlite:///{tmp_path}/arena.db")


def test_a_halt_set_mid_run_stops_the_job_after_the_current_round(store: ArenaStore) -> None:
    def halt_after_four(done: int, total: int) -> None:
        if done == 4:  # another process (the operator's `arena halt`) flips the switch while the job runs
            ArenaStore(store.url).set_halt(True, reason="exchange incident", by="ops", at_ns=1_700_000_000_000_000_000)

    report = start_run(_config(), store, progress=halt_after_four)
    assert report.status == "halted"
    assert report.rounds == 4
    assert "trading halted by ops" in report.message
    assert "exchange incident" in report.message
    run = store.get_run(report.run_id)
    assert run.status == "halted"
    assert run.last_round == 3
    eq = store.equity_frame(report.run_id)
    assert eq.groupby("agent")["round_no"].max().eq(3).all()  # every account ends on the same whole round

    # The halt persists: a restarted job (resume) plays nothing while it is on.
    again = resume_run(report.run_id, store)
    assert again.status == "halted"
    assert again.rounds == 0

    store.set_halt(False, by="ops", at_ns=1_700_000_100_000_000_000)
    finished = resume_run(report.run_id, store)
    assert finished.status == "completed"
    assert finished.rounds == 13 - 4  # 00:00 .. 12:00 hourly, both included
    eq = store.equity_frame(report.run_id)
    assert sorted(eq[eq["agent"] == "buy_and_hold"]["round_no"]) == list(range(13))


def test_a_new_job_does_not_start_trading_while_halted(store: ArenaStore) -> None:
    store.set_halt(True, reason="maintenance", by="ops", at_ns=1_700_000_000_000_000_000)
    report = start_run(_config(), store)
    assert report.status == "halted"
    assert report.rounds == 0
    assert store.fills_frame(report.run_id).empty
    assert store.equity_frame(report.run_id).empty


def test_halt_and_resume_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/arena.db"
    res = cli.invoke(app, ["halt", "--reason", "risk review", "--db", db])
    assert res.exit_code == 0, res.output
    assert "trading halted by" in res.output
    assert "risk review" in res.output
    state = ArenaStore(db).halt_state()
    assert state is not None
    assert state.halted
    res = cli.invoke(app, ["resume", "--db", db])
    assert res.exit_code == 0, res.output
    assert "trading enabled" in res.output
    assert "it was halted by" in res.output
    state = ArenaStore(db).halt_state()
    assert state is not None
    assert not state.halted


def test_arena_run_reports_the_halt(tmp_path: Path) -> None:
    import yaml

    db = f"sqlite:///{tmp_path}/arena.db"
    cfg = tmp_path / "arena.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "symbols": list(SYMBOLS),
                "timeframe": "1h",
                "start": "2025-03-01",
                "end": "2025-03-01T06:00",
                "agents": [{"agent": "noop", "label": "cash"}],
            }
        )
    )
    ArenaStore(db).set_halt(True, reason="drill", by="ops", at_ns=1_700_000_000_000_000_000)
    cache = f"sqlite:///{tmp_path}/c.db"
    res = cli.invoke(app, ["run", "--config", str(cfg), "--json", "--db", db, "--cache-db", cache])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == "halted"
    assert "drill" in out["message"]
