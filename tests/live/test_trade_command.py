"""`arena trade --mode live`: the latch refuses with every missing item, in one message and no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from arena_lib.cli.main import app
from tests.live.conftest import arena_yaml


def test_live_trade_without_the_latch_names_every_missing_item_and_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ARENA_LIVE_CONFIRM", "ARENA_LIVE_API_KEY", "ARENA_LIVE_API_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env with keys
    config = tmp_path / "arena.yaml"
    config.write_text(arena_yaml().replace("mode: live\n", ""))
    db = f"sqlite:///{tmp_path / 'ledger.db'}"
    res = CliRunner().invoke(app, ["trade", "--config", str(config), "--mode", "live", "--db", db])
    assert res.exit_code == 2
    out = res.output
    assert "live trading refused; nothing was started" in out
    for item in ("mode: live", "ARENA_LIVE_CONFIRM=LIVE", "ARENA_LIVE_API_KEY and ARENA_LIVE_API_SECRET"):
        assert item in out
    assert "Traceback" not in out
    assert not (tmp_path / "ledger.db").exists() or "live-job" not in (tmp_path / "ledger.db").read_bytes().decode(
        "latin-1"
    )
