"""Writer leases: at most one process writes a run's ledger at a time.

Two processes that resume the same run at once would otherwise both build rounds on their own in-memory accounts;
the round claim alone (`last_round` only moves forward) stops the loser from writing a round twice, but not from
writing the next one on top of fills it never committed. A lease is a row per run naming its holder (a host:pid:
random token) and when its claim expires. It is taken only when absent, expired or already ours, with conditional
statements that are atomic on SQLite and PostgreSQL alike, and every round committed under it renews it in the
round's own transaction (`ArenaStore.commit_round`), together with a check that the round follows the ledger's
last one. A holder that dies stops renewing, so its run can be taken over once the lease expires.

Times are epoch nanoseconds from the store's injected clock. Writers on different machines must keep their clocks
within a small fraction of the lease's time to live.
"""

from __future__ import annotations

import datetime
import os
import secrets
import socket
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, insert, or_, select, update

from arena_lib.arena.schema import WriterLeaseRow

_L = WriterLeaseRow
_TAKE = (
    update(_L)
    .where(
        _L.run_id == bindparam("b_run"), or_(_L.owner == bindparam("b_owner"), _L.expires_at_ns <= bindparam("b_now"))
    )
    .values(owner=bindparam("b_owner"), acquired_at_ns=bindparam("b_now"), expires_at_ns=bindparam("b_expires"))
)
_CREATE = insert(_L).values(
    run_id=bindparam("b_run"),
    owner=bindparam("b_owner"),
    acquired_at_ns=bindparam("b_now"),
    expires_at_ns=bindparam("b_expires"),
)
_RENEW = (
    update(_L)
    .where(_L.run_id == bindparam("b_run"), _L.owner == bindparam("b_owner"), _L.expires_at_ns > bindparam("b_now"))
    .values(expires_at_ns=bindparam("b_expires"))
)
_TAKE_FROM = (
    update(_L)
    .where(_L.run_id == bindparam("b_run"), _L.owner == bindparam("b_from"))
    .values(owner=bindparam("b_owner"), acquired_at_ns=bindparam("b_now"), expires_at_ns=bindparam("b_expires"))
)
_RELEASE = delete(_L).where(_L.run_id == bindparam("b_run"), _L.owner == bindparam("b_owner"))
_HOLDER = select(_L.owner, _L.expires_at_ns).where(_L.run_id == bindparam("b_run"))


class LedgerConflictError(RuntimeError):
    """Another writer holds or changed a run's ledger: this process must not write it (now)."""


class LeaseHeldError(LedgerConflictError):
    """A run's writer lease is held, unexpired, by another process."""

    def __init__(self, run_id: str, holder: str, expires_at_ns: int, now_ns: int) -> None:
        self.run_id, self.holder, self.expires_at_ns = run_id, holder, expires_at_ns
        super().__init__(
            f"run {run_id!r} is being written by {holder}, whose writer lease expires at {format_ns(expires_at_ns)} "
            f"(in {max(expires_at_ns - now_ns, 0) / 1e9:.0f} s); stop that process, or wait for the lease to expire "
            "and resume the run then"
        )


class LeaseLostError(LedgerConflictError):
    """This process no longer holds a run's writer lease, or the ledger moved under it: stop writing the run.

    `holder` is who holds the lease now (None: nobody, it expired or was released); `last_round` is the ledger's
    last committed round when the round did not follow it (None otherwise).
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        round_no: int | None = None,
        holder: str | None = None,
        last_round: int | None = None,
    ) -> None:
        self.run_id, self.round_no, self.holder, self.last_round = run_id, round_no, holder, last_round
        super().__init__(message)


@dataclass(frozen=True)
class WriterLease:
    """A held claim to write one run: the proof `ArenaStore.commit_round` checks and renews.

    `expires_at_ns` is as of the last acquire or renewal made through this object; commits renew the row in the
    database without changing it (the database is the truth, this value is informative).
    """

    run_id: str
    owner: str
    expires_at_ns: int
    ttl_ns: int


def new_owner_token() -> str:
    """A writer's name, unique per process and call: host:pid:random, so that messages can say who holds a run."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{secrets.token_hex(6)}"


def format_ns(t_ns: int) -> str:
    """Epoch nanoseconds as an ISO-8601 UTC time to the second, for messages."""
    return datetime.datetime.fromtimestamp(t_ns / 1e9, tz=datetime.UTC).isoformat(timespec="seconds")


def try_take(conn: Connection, run_id: str, owner: str, now_ns: int, expires_at_ns: int) -> bool:
    """Take over the run's lease row if it is ours or expired (one conditional UPDATE); False when it is not."""
    params = {"b_run": run_id, "b_owner": owner, "b_now": now_ns, "b_expires": expires_at_ns}
    return conn.execute(_TAKE, params).rowcount == 1


def holder_is_gone(holder: str) -> bool:
    """True when `holder` (host:pid:token) ran on this host and its process no longer runs: a killed writer.

    Its lease would otherwise block a resume until it expires. A holder on another host, or a process that still
    exists (or a pid now reused by another process), is never judged gone: then the lease runs out its time.
    """
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname()[:64] or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    pid = int(pid_text)
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"  # a zombie: killed, not yet reaped
    except FileNotFoundError:
        return True
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_from(conn: Connection, run_id: str, gone: str, owner: str, now_ns: int, expires_at_ns: int) -> bool:
    """Take the lease from a holder judged gone, only if it still holds it (one conditional UPDATE)."""
    params = {"b_run": run_id, "b_from": gone, "b_owner": owner, "b_now": now_ns, "b_expires": expires_at_ns}
    return conn.execute(_TAKE_FROM, params).rowcount == 1


def create(conn: Connection, run_id: str, owner: str, now_ns: int, expires_at_ns: int) -> None:
    """Insert the run's first lease row; IntegrityError when a row exists (another writer created it first)."""
    conn.execute(_CREATE, {"b_run": run_id, "b_owner": owner, "b_now": now_ns, "b_expires": expires_at_ns})


def renew(conn: Connection, lease: WriterLease, now_ns: int) -> bool:
    """Extend a lease that is still ours and unexpired to `now_ns + ttl`; False (nothing changed) otherwise."""
    params = {"b_run": lease.run_id, "b_owner": lease.owner, "b_now": now_ns, "b_expires": now_ns + lease.ttl_ns}
    return conn.execute(_RENEW, params).rowcount == 1


def release(conn: Connection, lease: WriterLease) -> None:
    """Delete the lease row if it is still ours (a no-op otherwise)."""
    conn.execute(_RELEASE, {"b_run": lease.run_id, "b_owner": lease.owner})


def holder(conn: Connection, run_id: str) -> tuple[str, int] | None:
    """Who holds a run's lease row and until when (it may have expired), or None when there is none."""
    row = conn.execute(_HOLDER, {"b_run": run_id}).first()
    return None if row is None else (str(row[0]), int(row[1]))


def lost_lease(
    lease: WriterLease, current: tuple[str, int] | None, now_ns: int, round_no: int | None
) -> LeaseLostError:
    """The error for a lease that failed to renew, naming who holds the run now."""
    what = f"round {round_no} not committed" if round_no is not None else "lease not renewed"
    if current is None:
        state, held_by = "nobody holds it (it was released or taken and given up)", None
    elif current[0] == lease.owner:
        state, held_by = f"it expired at {format_ns(current[1])}", None
    elif current[1] > now_ns:
        state, held_by = f"{current[0]} holds it until {format_ns(current[1])}", current[0]
    else:
        state, held_by = f"{current[0]} took it and let it expire at {format_ns(current[1])}", current[0]
    return LeaseLostError(
        f"run {lease.run_id!r}: {what}: this process ({lease.owner}) no longer holds the run's writer lease; "
        f"{state}. Stop writing this run; resume it to continue from the ledger's last committed round",
        run_id=lease.run_id,
        round_no=round_no,
        holder=held_by,
    )


def out_of_order(lease: WriterLease, round_no: int, last_round: int) -> LeaseLostError:
    """The error for a round that does not follow the ledger's last committed round."""
    return LeaseLostError(
        f"run {lease.run_id!r}: round {round_no} not committed: the ledger's last committed round is {last_round}, "
        f"so the next one is {last_round + 1}; another writer moved the run, or this process skipped or repeated "
        "a round. Stop writing this run; resume it to continue from the ledger",
        run_id=lease.run_id,
        round_no=round_no,
        last_round=last_round,
    )
