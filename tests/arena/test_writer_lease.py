"""One writer per run: the store side of the writer lease (`arena_lib.arena.lease`, `ArenaStore.acquire_lease`).

Every test runs on a SQLite file in WAL mode, as in production, and on a real PostgreSQL (skipped, saying why, where
the server or psycopg is missing). "Two processes" are two `ArenaStore` objects with their own engines on the same
database (real separate connections), sharing one simulated clock so that a lease expires without sleeping. The
races run real threads and real forked processes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arena_lib.arena import schema as t
from arena_lib.arena.lease import format_ns, holder_is_gone
from arena_lib.arena.store import (
    AccountState,
    ArenaStore,
    LeaseHeldError,
    LeaseLostError,
    LedgerConflictError,
    RoundWrite,
    WriterLease,
)
from arena_lib.core.clock import SimulatedClock
from tests.arena.fixtures.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)

RUN = "lease-run"
T0 = 1_740_787_200_000_000_000
SECOND = 1_000_000_000
HOUR = 3600 * SECOND


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/arena.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str, clock: SimulatedClock) -> Iterator[ArenaStore]:
    st = ArenaStore(url, clock=clock)
    st.create_run(
        t.RunRow(
            run_id=RUN,
            created_at=T0,
            mode="paper",
            status="running",
            config={},
            spec_hash="x",
            symbols=["BTC/USDT"],
            timeframe="1h",
        ),
        [t.RunAgentRow(run_id=RUN, agent="a", kind="quant", initial_cash=1000.0)],
        [_account(-1)],
    )
    yield st
    st.engine.dispose()


@pytest.fixture
def other(url: str, clock: SimulatedClock, store: ArenaStore) -> Iterator[ArenaStore]:
    """A second writer: its own engine and connections on the same database."""
    st = ArenaStore(url, clock=clock)
    yield st
    st.engine.dispose()


def _account(last_round: int, cash: float = 1000.0) -> AccountState:
    return AccountState("a", last_round, cash, 0.0, 0.0, 0.0, {}, [], {})


def _round(round_no: int, cash: float = 1000.0) -> RoundWrite:
    ts = T0 + round_no * HOUR
    return RoundWrite(
        run_id=RUN,
        round_no=round_no,
        ts=ts,
        snapshot_hash=f"{round_no:016x}",
        snapshot_content={},
        wall_started=ts,
        wall_s=0.0,
        accounts=[_account(round_no, cash)],
        equity=[t.EquityRow(run_id=RUN, agent="a", round_no=round_no, ts=ts, cash=cash, equity=cash, gross_exposure=0)],
    )


def _ledger(store: ArenaStore) -> tuple[int, list[int], list[int], dict[str, Any]]:
    """The run's last round, committed rounds, equity rounds and account state."""
    acc = store.load_accounts(RUN)["a"]
    return (
        store.get_run(RUN).last_round,
        store.rounds_frame(RUN)["round_no"].tolist(),
        store.equity_frame(RUN)["round_no"].tolist(),
        {"last_round": acc.last_round, "cash": acc.cash},
    )


def _lease_row(store: ArenaStore) -> tuple[str, int] | None:
    with store.session() as s:
        row = s.get(t.WriterLeaseRow, RUN)
        return None if row is None else (row.owner, row.expires_at_ns)


def test_a_sqlite_store_is_a_wal_file(tmp_path: Path) -> None:
    ArenaStore(f"sqlite:///{tmp_path}/arena.db").engine.dispose()
    conn = sqlite3.connect(tmp_path / "arena.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_a_second_writer_is_refused_with_the_holder_named(store: ArenaStore, other: ArenaStore) -> None:
    lease = store.acquire_lease(RUN, ttl_s=90)
    assert isinstance(lease, WriterLease)
    assert (lease.run_id, lease.expires_at_ns) == (RUN, T0 + 90 * SECOND)
    host, pid, token = lease.owner.split(":")
    assert (pid, len(token)) == (str(os.getpid()), 12)
    assert host

    with pytest.raises(LeaseHeldError) as refused:
        other.acquire_lease(RUN)
    err = refused.value
    assert isinstance(err, LedgerConflictError)
    assert isinstance(err, RuntimeError)
    assert (err.run_id, err.holder, err.expires_at_ns) == (RUN, lease.owner, lease.expires_at_ns)
    message = str(err)
    assert "\n" not in message
    assert repr(RUN) in message
    assert lease.owner in message
    assert format_ns(lease.expires_at_ns) in message
    assert "in 90 s" in message
    assert _lease_row(store) == (lease.owner, lease.expires_at_ns)  # the refusal changed nothing


def test_tokens_differ_per_lease_and_the_owner_can_take_its_own_lease_again(
    store: ArenaStore, other: ArenaStore, clock: SimulatedClock
) -> None:
    first = store.acquire_lease(RUN, ttl_s=60)
    assert store.acquire_lease("another-run").owner != first.owner
    clock.advance_to(T0 + 30 * SECOND)
    again = other.acquire_lease(RUN, ttl_s=60, owner=first.owner)  # the same writer, e.g. restarted in-process
    assert (again.owner, again.expires_at_ns) == (first.owner, T0 + 90 * SECOND)
    with pytest.raises(LeaseHeldError):
        other.acquire_lease(RUN, ttl_s=60)


def test_an_expired_lease_is_taken_over_and_the_old_holder_then_writes_nothing(
    store: ArenaStore, other: ArenaStore, clock: SimulatedClock
) -> None:
    old = store.acquire_lease(RUN, ttl_s=60)
    assert store.commit_round(_round(0), old) is True
    clock.advance_to(T0 + 59 * SECOND)  # renewed by the commit at T0: held until T0 + 60 s
    with pytest.raises(LeaseHeldError):
        other.acquire_lease(RUN, ttl_s=60)
    clock.advance_to(T0 + 60 * SECOND)
    new = other.acquire_lease(RUN, ttl_s=60)
    assert new.owner != old.owner
    before = _ledger(store)

    with pytest.raises(LeaseLostError) as lost:
        store.commit_round(_round(1, cash=1.0), old)
    err = lost.value
    assert (err.run_id, err.round_no, err.holder, err.last_round) == (RUN, 1, new.owner, None)
    assert "round 1 not committed" in str(err)
    assert new.owner in str(err)
    assert old.owner in str(err)
    assert "\n" not in str(err)
    assert _ledger(store) == before == (0, [0], [0], {"last_round": 0, "cash": 1000.0})
    assert _lease_row(store) == (new.owner, new.expires_at_ns)  # and the new holder's lease is untouched
    with pytest.raises(LeaseLostError):
        store.renew_lease(old)
    store.release_lease(old)  # releasing a lease that is no longer ours leaves the new holder's alone
    assert _lease_row(store) == (new.owner, new.expires_at_ns)

    assert other.commit_round(_round(1, cash=900.0), new) is True
    assert _ledger(other) == (1, [0, 1], [0, 1], {"last_round": 1, "cash": 900.0})


def test_a_lease_that_expired_untaken_no_longer_commits(store: ArenaStore, clock: SimulatedClock) -> None:
    lease = store.acquire_lease(RUN, ttl_s=10)
    clock.advance_to(T0 + 10 * SECOND)
    with pytest.raises(LeaseLostError, match="expired at") as lost:
        store.commit_round(_round(0), lease)
    assert lost.value.holder is None
    assert _ledger(store)[:2] == (-1, [])
    with pytest.raises(LeaseLostError, match="expired at"):
        store.renew_lease(lease)
    assert store.acquire_lease(RUN, ttl_s=10, owner=lease.owner).expires_at_ns == T0 + 20 * SECOND  # retaken


def test_each_commit_and_renewal_extends_the_lease(store: ArenaStore, other: ArenaStore, clock: SimulatedClock) -> None:
    lease = store.acquire_lease(RUN, ttl_s=60)
    clock.advance_to(T0 + 50 * SECOND)
    assert store.commit_round(_round(0), lease) is True
    assert _lease_row(store) == (lease.owner, T0 + 110 * SECOND)
    clock.advance_to(T0 + 100 * SECOND)
    with pytest.raises(LeaseHeldError, match="in 10 s"):
        other.acquire_lease(RUN)
    renewed = store.renew_lease(lease)
    assert renewed == WriterLease(RUN, lease.owner, T0 + 160 * SECOND, lease.ttl_ns)
    assert _lease_row(store) == (lease.owner, T0 + 160 * SECOND)


def test_a_commit_that_skips_or_repeats_a_round_is_refused(store: ArenaStore, clock: SimulatedClock) -> None:
    lease = store.acquire_lease(RUN, ttl_s=60)
    assert store.commit_round(_round(0), lease) is True
    clock.advance_to(T0 + 10 * SECOND)
    committed = _ledger(store)
    for bad in (2, 0, -1):
        with pytest.raises(LeaseLostError) as refused:
            store.commit_round(_round(bad, cash=5.0), lease)
        err = refused.value
        assert (err.round_no, err.last_round, err.holder) == (bad, 0, None)
        assert f"round {bad} not committed" in str(err)
        assert "last committed round is 0" in str(err)
        assert _ledger(store) == committed
    assert _lease_row(store) == (lease.owner, T0 + 60 * SECOND)  # a refused commit renews nothing either
    assert store.commit_round(_round(1), lease) is True
    assert _ledger(store)[:2] == (1, [0, 1])


def test_a_lease_is_for_one_run_only(store: ArenaStore) -> None:
    lease = store.acquire_lease("some-other-run")
    with pytest.raises(ValueError, match="'some-other-run'"):
        store.commit_round(_round(0), lease)
    with pytest.raises(KeyError, match="no run 'some-other-run'"):
        store.commit_round(RoundWrite(**{**_round(0).__dict__, "run_id": "some-other-run"}), lease)


def test_without_a_lease_commits_keep_their_old_rules(store: ArenaStore, other: ArenaStore) -> None:
    """The pre-lease behaviour the runner relies on until it passes leases: a repeat is a no-op, a gap allowed."""
    other.acquire_lease(RUN)
    assert store.commit_round(_round(0)) is True
    assert store.commit_round(_round(0)) is False
    assert store.commit_round(_round(3)) is True
    assert _ledger(store)[:2] == (3, [0, 3])


def test_a_released_lease_is_free_at_once_and_release_is_idempotent(store: ArenaStore, other: ArenaStore) -> None:
    lease = store.acquire_lease(RUN)
    store.release_lease(lease)
    store.release_lease(lease)
    assert _lease_row(store) is None
    taken = other.acquire_lease(RUN)
    with pytest.raises(LeaseLostError, match=f"{taken.owner} holds it until"):
        store.commit_round(_round(0), lease)


def test_a_lease_needs_a_positive_time_to_live(store: ArenaStore) -> None:
    with pytest.raises(ValueError, match="ttl_s=0"):
        store.acquire_lease(RUN, ttl_s=0)


@pytest.mark.parametrize("existing", ["none", "expired"])
def test_racing_threads_exactly_one_takes_the_lease(
    existing: str, url: str, store: ArenaStore, clock: SimulatedClock
) -> None:
    if existing == "expired":  # the race then runs through the conditional UPDATE instead of the INSERT
        store.acquire_lease(RUN, ttl_s=1)
        clock.advance_to(T0 + 2 * SECOND)
    n = 8
    stores = [ArenaStore(url, clock=clock) for _ in range(n)]
    start = threading.Barrier(n)
    won: list[WriterLease] = []
    refused: list[LeaseHeldError] = []
    errors: list[BaseException] = []

    def race(st: ArenaStore) -> None:
        try:
            start.wait()
            won.append(st.acquire_lease(RUN))
        except LeaseHeldError as exc:
            refused.append(exc)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(st,)) for st in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for st in stores:
        st.engine.dispose()
    assert errors == []
    assert len(won) == 1
    assert len(refused) == n - 1
    assert {e.holder for e in refused} == {won[0].owner}
    assert _lease_row(store) == (won[0].owner, won[0].expires_at_ns)


def _acquire_in_child(url: str, go: Any, results: Any, done: Any) -> None:
    """A forked writer: open the store, wait for the start signal, try to take the lease, report, and stay alive
    until every writer has tried (a writer whose process is gone loses its lease to the next one)."""
    st = ArenaStore(url)
    go.wait()
    try:
        lease = st.acquire_lease(RUN)
        results.put(("won", lease.owner))
    except LeaseHeldError as exc:
        results.put(("refused", exc.holder))
    except BaseException as exc:  # reported to the parent
        results.put(("error", repr(exc)))
    finally:
        done.wait(60)
        st.engine.dispose()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks its writers (POSIX only)")
def test_racing_processes_exactly_one_takes_the_lease(url: str, store: ArenaStore) -> None:
    ctx = multiprocessing.get_context("fork")
    go, done, results = ctx.Event(), ctx.Event(), ctx.Queue()
    n = 4
    procs = [ctx.Process(target=_acquire_in_child, args=(url, go, results, done)) for _ in range(n)]
    for p in procs:
        p.start()
    go.set()
    outcomes = [results.get(timeout=60) for _ in range(n)]
    done.set()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * n
    winners = [who for what, who in outcomes if what == "won"]
    assert len(winners) == 1, outcomes
    assert sorted(outcomes) == sorted([("won", winners[0])] + [("refused", winners[0])] * (n - 1))
    owner = _lease_row(store)
    assert owner is not None
    assert owner[0] == winners[0]
    assert winners[0].split(":")[1] != str(os.getpid())  # taken in a child, named by the child's pid


def _hold_and_die(url: str, conn: Any) -> None:
    """A forked writer that takes the lease and is then killed (it never releases it)."""
    st = ArenaStore(url)
    lease = st.acquire_lease(RUN, ttl_s=3600)
    conn.send(lease.owner)  # a pipe write completes before the kill (a Queue's feeder thread might not)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forks its writer (POSIX only)")
def test_the_lease_of_a_killed_writer_on_this_host_is_taken_at_once(url: str, store: ArenaStore) -> None:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_hold_and_die, args=(url, child))
    proc.start()
    assert parent.poll(60)
    dead = parent.recv()
    proc.join(timeout=60)
    assert proc.exitcode == -signal.SIGKILL
    lease = store.acquire_lease(RUN)  # an hour before its lease would expire
    assert lease.owner != dead
    assert _lease_row(store)[0] == lease.owner  # type: ignore[index]


def test_a_live_holder_elsewhere_is_never_judged_gone() -> None:
    assert not holder_is_gone(f"another-host:{os.getpid() + 1}:abc")
    assert not holder_is_gone(f"{socket.gethostname()[:64]}:{os.getpid()}:abc")  # this process
    assert not holder_is_gone(f"{socket.gethostname()[:64]}:1:abc")  # init is alive
