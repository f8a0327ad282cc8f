"""`trade_step`: one scheduled invocation of a trading job plays what is new, once, whoever calls it.

Paper mode is fed the bundled sample's bars cut at successive closes, as the ccxt feed would deliver them hour by
hour; no exchange is involved, because the feed has its own tests (`test_paper.py`).
"""

from __future__ import annotations

import threading

import pytest

from arena_lib.arena.lease import LeaseHeldError
from arena_lib.arena.session import job_run_id, trade_step
from arena_lib.arena.store import ArenaStore
from arena_lib.core.spec import AgentSpec
from arena_lib.data.history import load_market
from arena_lib.data.market import MarketData
from tests.arena.conftest import arena_config

QUANT = (AgentSpec("buy_and_hold", {"fraction": 0.3}), AgentSpec("sma_cross", {"fast": 5, "slow": 20, "fraction": 0.3}))


def _bars_until(hour: int) -> MarketData:
    """What a paper feed returns at 2025-03-01 `hour`:00 + 1h: the closed bars up to that hour."""
    return load_market(("BTC/USDT", "ETH/USDT"), "1h", "2025-02-15", f"2025-03-01 {hour:02d}:00")


def test_paper_job_plays_each_new_bar_once(store: ArenaStore) -> None:
    config = arena_config(quant=QUANT)
    first = trade_step(config, store, job="hourly", market=_bars_until(5))
    assert first.run_id == job_run_id("hourly", "paper") == "paper-job-hourly"
    assert first.rounds == 1
    assert store.get_run(first.run_id).last_round == 0
    same = trade_step(config, store, job="hourly", market=_bars_until(5))
    assert same.rounds == 0, "no new closed bar: nothing is played"
    later = trade_step(config, store, job="hourly", market=_bars_until(8))
    assert later.rounds == 1, "three bars closed: two settled without the agents, the newest decided"
    rounds = store.rounds_frame(first.run_id)
    assert rounds["round_no"].tolist() == [0, 1, 2, 3]
    assert set(store.decisions_frame(first.run_id)["round_no"]) <= {0, 3}, "only the newest bar asks the agents"


def test_two_schedulers_on_the_same_bar_commit_it_once(store: ArenaStore) -> None:
    config = arena_config(quant=QUANT)
    trade_step(config, store, job="race", market=_bars_until(3))
    market = _bars_until(4)
    errors: list[BaseException] = []

    def invoke() -> None:
        try:
            trade_step(config, store, job="race", market=market)
        except BaseException as exc:  # collected: the assertion below shows what failed
            errors.append(exc)

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # The second scheduler either found the bar played already, or was refused the run's writer lease while the
    # first one wrote it, with the holder named; it never wrote anything itself.
    assert len(errors) <= 1
    assert all(isinstance(e, LeaseHeldError) and "is being written by" in str(e) for e in errors)
    run_id = job_run_id("race", "paper")
    assert store.rounds_frame(run_id)["round_no"].tolist() == [0, 1]
    fills = store.fills_frame(run_id)
    assert fills["fill_id"].is_unique


def test_replay_job_advances_by_bars_and_a_changed_config_is_refused(store: ArenaStore) -> None:
    config = arena_config(quant=QUANT)
    assert trade_step(config, store, job="walk", bars=5).rounds == 5
    assert trade_step(config, store, job="walk", bars=5).rounds == 5
    assert store.get_run("replay-job-walk").last_round == 9
    other = arena_config(quant=QUANT, end="2025-03-03")
    with pytest.raises(ValueError, match="use a new job name"):
        trade_step(other, store, job="walk", bars=1)
    with pytest.raises(ValueError, match="a job name is"):
        job_run_id("bad name!", "paper")
