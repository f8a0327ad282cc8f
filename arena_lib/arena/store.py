"""The arena's durable ledger: open it by URL, commit whole rounds, resume accounts, read frames back.

SQLite under `.arena/arena.db` is the embedded default; `ARENA_DB_URL` (or `--db`) points it at PostgreSQL
(`postgresql+psycopg://user@host/db`) with no code change. A round is committed in one transaction together with
every account's state and the run's `last_round`, so a process killed at any instant leaves the ledger at the end
of a whole round, and a restart resumes from there.

One process at a time writes a run: it takes the run's writer lease (`acquire_lease`) and passes it to every
`commit_round`, which renews it and checks that the round follows the ledger's last one in the round's own
transaction (`arena_lib.arena.lease`). Opening a store creates or upgrades its tables by alembic migrations.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, Insert, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from arena_lib.arena import lease as leases
from arena_lib.arena import schema as t
from arena_lib.arena.lease import LeaseHeldError, LeaseLostError, LedgerConflictError, WriterLease
from arena_lib.core.clock import Clock, WallClock
from arena_lib.core.database import local_url, open_engine
from arena_lib.core.migrations import upgrade_to_head
from arena_lib.core.types import Action, Order, Position

DB_URL_ENV = "ARENA_DB_URL"
# The lease's types and errors are part of the store's API (`arena_lib.arena.lease` defines them).
__all__ = [
    "DB_URL_ENV",
    "AccountState",
    "ArenaStore",
    "HaltState",
    "LeaseHeldError",
    "LeaseLostError",
    "LedgerConflictError",
    "RoundWrite",
    "WriterLease",
    "default_db_url",
    "make_engine",
    "order_from_dict",
    "order_to_dict",
    "position_to_dict",
    "redact_url",
]


def default_db_url() -> str:
    """`ARENA_DB_URL` if set, else a SQLite file under `.arena/` in the current directory."""
    return local_url(DB_URL_ENV, "arena.db")


def redact_url(url: str) -> str:
    """A database URL with its password masked, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def make_engine(url: str) -> Engine:
    """An engine on the ledger's tables, migrated to head (crash-safe settings on SQLite; see `core.database`)."""
    return open_engine(url, t.MIGRATIONS)


# -- value <-> row conversions ------------------------------------------------------------------------------------
def position_to_dict(p: Position) -> dict[str, Any]:
    return asdict(p)


def order_to_dict(o: Order) -> dict[str, Any]:
    d = asdict(o)
    d["action"] = o.action.value
    return d


def order_from_dict(d: Mapping[str, Any]) -> Order:
    return Order(**{**d, "action": Action(d["action"])})


@dataclass
class AccountState:
    """What a restart needs to rebuild one account exactly as its last committed round left it."""

    agent: str
    last_round: int
    cash: float
    realized_pnl: float
    fees_paid: float
    funding_paid: float
    positions: dict[str, Position]
    pending: list[Order]
    plans: dict[str, dict[str, Any]]
    broker_state: dict[str, Any] = field(default_factory=dict)  # `Broker.state()` (a live broker's cursors)


@dataclass
class RoundWrite:
    """Everything one round produced, written in a single transaction."""

    run_id: str
    round_no: int
    ts: int
    snapshot_hash: str
    snapshot_content: dict[str, Any]
    wall_started: int
    wall_s: float
    accounts: list[AccountState]
    prompts: list[t.PromptRow] = field(default_factory=list)
    llm_calls: list[t.LLMCallRow] = field(default_factory=list)
    decisions: list[t.DecisionRow] = field(default_factory=list)
    orders: list[t.OrderRow] = field(default_factory=list)
    fills: list[t.FillRow] = field(default_factory=list)
    equity: list[t.EquityRow] = field(default_factory=list)
    invalidations: dict[str, dict[str, str]] = field(default_factory=dict)  # agent -> symbol -> condition
    breakers: list[t.BreakerRow] = field(default_factory=list)  # circuit-breaker state changes of this round
    rejections: list[t.RejectionRow] = field(default_factory=list)  # approved orders that did not fill


# The statements of `commit_round`, built once: SQLAlchemy then reuses their cache keys and compiled forms.
_CLAIM_ROUND = (
    update(t.RunRow)
    .where(t.RunRow.run_id == bindparam("b_run"), t.RunRow.last_round < bindparam("b_round"))
    .values(last_round=bindparam("b_round"))
)
# With a writer lease the round must be the very next one: a writer that skipped or repeated one is refused.
_CLAIM_NEXT_ROUND = (
    update(t.RunRow)
    .where(t.RunRow.run_id == bindparam("b_run"), t.RunRow.last_round == bindparam("b_previous"))
    .values(last_round=bindparam("b_round"))
)
_RUN_EXISTS = select(t.RunRow.run_id).where(t.RunRow.run_id == bindparam("b_run"))
_LAST_ROUND = select(t.RunRow.last_round).where(t.RunRow.run_id == bindparam("b_run"))
_SNAPSHOT_EXISTS = select(t.SnapshotRow.ts).where(t.SnapshotRow.snapshot_hash == bindparam("b_hash"))
_KNOWN_PROMPTS = select(t.PromptRow.sha256).where(t.PromptRow.sha256.in_(bindparam("b_shas", expanding=True)))
_DELETE_POSITIONS = delete(t.PositionRow).where(
    t.PositionRow.run_id == bindparam("b_run"), t.PositionRow.agent.in_(bindparam("b_agents", expanding=True))
)
# The SET clause comes from the column names among the parameters (everything but the b_ keys).
_UPDATE_ACCOUNT = update(t.AccountRow).where(
    t.AccountRow.run_id == bindparam("b_run"), t.AccountRow.agent == bindparam("b_agent")
)


@dataclass(frozen=True)
class HaltState:
    """The kill switch's state: who halted trading, when (epoch ns, wall clock) and why."""

    halted: bool
    reason: str
    by: str
    at_ns: int
    flatten: bool = False  # jobs close their positions and cancel their orders before stopping

    def describe(self) -> str:
        at = pd.Timestamp(self.at_ns, tz="UTC").isoformat(timespec="seconds")
        if not self.halted:
            return f"trading enabled (resumed by {self.by or 'unknown'} at {at})"
        why = f": {self.reason}" if self.reason else ""
        why += " (positions flattened)" if self.flatten else ""
        return f"trading halted by {self.by or 'unknown'} at {at}{why}; `arena resume` lifts the halt"


class ArenaStore:
    """The ledger of every run, round, decision, order, fill and account in one database.

    `clock` dates writer leases (the wall clock by default; tests pass a simulated one to expire leases without
    sleeping). A given `engine` is used as it is, its database migrated to head like one opened by URL.
    """

    def __init__(self, url: str | None = None, engine: Engine | None = None, *, clock: Clock | None = None) -> None:
        self.url = url or default_db_url()
        if engine is None:
            engine = make_engine(self.url)
        else:
            upgrade_to_head(engine, t.MIGRATIONS)
        self.engine = engine
        self.clock: Clock = clock or WallClock()
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._sessions()

    # -- runs ------------------------------------------------------------------------------------------------
    def create_run(self, run: t.RunRow, agents: Sequence[t.RunAgentRow], accounts: Sequence[AccountState]) -> None:
        with self.session() as s, s.begin():
            if s.get(t.RunRow, run.run_id) is not None:
                raise ValueError(f"run {run.run_id!r} already exists in {redact_url(self.url)}; use resume")
            s.add(run)
            s.flush()  # the run's row first: run_agents has a foreign key to it, which PostgreSQL enforces
            s.add_all(agents)
            for acc in accounts:
                s.add(_account_row(run.run_id, acc))

    def get_run(self, run_id: str) -> t.RunRow:
        with self.session() as s:
            row = s.get(t.RunRow, run_id)
            if row is None:
                known = s.scalars(select(t.RunRow.run_id).order_by(t.RunRow.created_at.desc()).limit(5)).all()
                raise KeyError(f"no run {run_id!r} in {redact_url(self.url)}; recent runs: {list(known)}")
            return row

    def runs(self) -> pd.DataFrame:
        cols = ["run_id", "created_at", "mode", "status", "timeframe", "start", "end", "last_round", "message"]
        with self.session() as s:
            rows = s.execute(select(*(getattr(t.RunRow, c) for c in cols)).order_by(t.RunRow.created_at)).all()
        frame = pd.DataFrame(rows, columns=cols)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    def latest_run_id(self) -> str | None:
        with self.session() as s:
            return s.scalar(select(t.RunRow.run_id).order_by(t.RunRow.created_at.desc()).limit(1))

    # -- writer leases (`arena_lib.arena.lease`) -------------------------------------------------------------------
    def acquire_lease(self, run_id: str, *, ttl_s: float = 120.0, owner: str | None = None) -> WriterLease:
        """Take the right to write `run_id` for `ttl_s` seconds, renewed by each `commit_round` given the lease.

        Taken only when the run has no lease, its lease has expired, it is already `owner`'s (a new random
        host:pid token by default), or its holder was a process on this host that no longer runs (killed);
        LeaseHeldError, naming the holder and when its lease expires, otherwise.
        Concurrent callers race on conditional statements, so exactly one of them wins.
        """
        if not ttl_s > 0:
            raise ValueError(f"a writer lease needs a positive time to live, got ttl_s={ttl_s}")
        owner = owner or leases.new_owner_token()
        ttl_ns = int(ttl_s * 1e9)
        for _ in range(3):  # a row that changes hands between our statements: look again
            now = self.clock.now_ns()
            lease = WriterLease(run_id=run_id, owner=owner, expires_at_ns=now + ttl_ns, ttl_ns=ttl_ns)
            with self.engine.begin() as conn:
                if leases.try_take(conn, run_id, owner, now, lease.expires_at_ns):
                    return lease
            try:  # no row, or a live one of another owner: only the first INSERT of a run's row succeeds
                with self.engine.begin() as conn:
                    leases.create(conn, run_id, owner, now, lease.expires_at_ns)
                return lease
            except IntegrityError:
                pass
            with self.engine.connect() as conn:
                current = leases.holder(conn, run_id)
            if current is not None and current[0] != owner and current[1] > now:
                if leases.holder_is_gone(current[0]):  # a killed writer on this host: its run is free now
                    with self.engine.begin() as conn:
                        if leases.take_from(conn, run_id, current[0], owner, now, lease.expires_at_ns):
                            return lease
                    continue
                raise LeaseHeldError(run_id, current[0], current[1], now)
        raise LedgerConflictError(f"run {run_id!r}: its writer lease kept changing hands while taking it; try again")

    def renew_lease(self, lease: WriterLease) -> WriterLease:
        """Extend a held lease by its time to live from now (between rounds that take long); LeaseLostError when
        it is no longer ours or has expired, whoever holds it now."""
        now = self.clock.now_ns()
        with self.engine.begin() as conn:
            if not leases.renew(conn, lease, now):
                raise leases.lost_lease(lease, leases.holder(conn, lease.run_id), now, None)
        return replace(lease, expires_at_ns=now + lease.ttl_ns)

    def release_lease(self, lease: WriterLease) -> None:
        """Give a run's lease up (at the end of a run, or on a clean stop) so another writer need not wait for it
        to expire; a no-op when it is no longer ours."""
        with self.engine.begin() as conn:
            leases.release(conn, lease)

    # -- kill switch -----------------------------------------------------------------------------------------
    def set_halt(self, halted: bool, *, reason: str = "", by: str = "", at_ns: int, flatten: bool = False) -> HaltState:
        """Halt (or resume) every trading job that uses this store; it persists across restarts.

        With `flatten`, each paper or live job also cancels its open orders and closes its positions before it
        stops (`ArenaRunner.check_halt`); without it, exits already resting on an exchange stay there.
        """
        flatten = flatten and halted
        with self.session() as s, s.begin():
            row = s.get(t.HaltRow, "all")
            if row is None:
                row = t.HaltRow(scope="all", halted=halted, reason=reason, by=by, at_ns=at_ns, flatten=flatten)
                s.add(row)
            else:
                row.halted, row.reason, row.by, row.at_ns, row.flatten = halted, reason, by, at_ns, flatten
        return HaltState(halted, reason, by, at_ns, flatten)

    def halt_state(self) -> HaltState | None:
        """The kill switch's last setting (None: never set, trading enabled)."""
        with self.session() as s:
            row = s.get(t.HaltRow, "all")
            return None if row is None else HaltState(row.halted, row.reason, row.by, row.at_ns, bool(row.flatten))

    # -- circuit breakers (`arena_lib.arena.breakers`) --------------------------------------------------------
    def latest_breakers(self, run_id: str) -> list[t.BreakerRow]:
        """The latest breaker row of each scope of a run (its current state); scopes that never changed have none."""
        b = t.BreakerRow
        last = select(func.max(b.id)).where(b.run_id == run_id).group_by(b.agent).scalar_subquery()
        with self.session() as s:
            return list(s.scalars(select(b).where(b.run_id == run_id, b.id.in_(last)).order_by(b.id)))

    def breakers_after(self, run_id: str, after_id: int) -> list[t.BreakerRow]:
        """Breaker rows of a run newer than `after_id`, oldest first: a running job's poll for operator resets."""
        b = t.BreakerRow
        stmt = select(b).where(b.run_id == run_id, b.id > after_id).order_by(b.id)
        with self.session() as s:
            return list(s.scalars(stmt))

    def add_breakers(self, rows: Sequence[t.BreakerRow]) -> None:
        """Append breaker rows in one transaction (an operator's reset; rounds write theirs in `commit_round`)."""
        with self.engine.begin() as conn:
            _insert(conn, rows)

    def equity_at(self, run_id: str, round_no: int) -> dict[str, float]:
        """Every account's equity at one round's close (empty when that round was not committed)."""
        e = t.EquityRow
        stmt = select(e.agent, e.equity).where(e.run_id == run_id, e.round_no == round_no)
        with self.engine.connect() as conn:
            return {str(a): float(v) for a, v in conn.execute(stmt)}

    def set_status(self, run_id: str, status: str, message: str = "") -> None:
        with self.session() as s, s.begin():
            s.execute(update(t.RunRow).where(t.RunRow.run_id == run_id).values(status=status, message=message))

    def run_agents(self, run_id: str) -> list[t.RunAgentRow]:
        with self.session() as s:
            return list(s.scalars(select(t.RunAgentRow).where(t.RunAgentRow.run_id == run_id)))

    # -- accounts --------------------------------------------------------------------------------------------
    def load_accounts(self, run_id: str) -> dict[str, AccountState]:
        """Every account of a run as its last committed round left it."""
        with self.session() as s:
            accs = s.scalars(select(t.AccountRow).where(t.AccountRow.run_id == run_id)).all()
            pos = s.scalars(select(t.PositionRow).where(t.PositionRow.run_id == run_id)).all()
        positions: dict[str, dict[str, Position]] = {}
        for p in pos:
            positions.setdefault(p.agent, {})[p.symbol] = Position(
                symbol=p.symbol,
                quantity=p.quantity,
                entry_price=p.entry_price,
                leverage=p.leverage,
                margin=p.margin,
                opened_at=p.opened_at,
                liquidation_price=p.liquidation_price,
                stop_loss=p.stop_loss,
                take_profit=p.take_profit,
                entry_fee=p.entry_fee,
                funding_paid=p.funding_paid,
            )
        return {
            a.agent: AccountState(
                agent=a.agent,
                last_round=a.last_round,
                cash=a.cash,
                realized_pnl=a.realized_pnl,
                fees_paid=a.fees_paid,
                funding_paid=a.funding_paid,
                positions=positions.get(a.agent, {}),
                pending=[order_from_dict(o) for o in a.pending],
                plans=dict(a.plans),
                broker_state=dict(a.broker_state or {}),
            )
            for a in accs
        }

    def set_broker_state(self, run_id: str, agent: str, state: Mapping[str, Any]) -> None:
        """Record a broker's state before the run's first round (a live account's baseline and cursors)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.AccountRow)
                .where(t.AccountRow.run_id == run_id, t.AccountRow.agent == agent)
                .values(broker_state=dict(state))
            )

    # -- rounds ----------------------------------------------------------------------------------------------
    def commit_round(self, w: RoundWrite, lease: WriterLease | None = None) -> bool:
        """Write a round atomically; False (and nothing written) when that round was already committed.

        The first statement claims the round (`last_round` only moves forward), so two writers of one round
        cannot both write it; the rest is plain INSERTs, one executemany per table, with statements built once.
        The ORM's unit of work used to cost several times the database's own time, and a cached replay commits
        hundreds of rounds per second.

        With a `lease` (from `acquire_lease`), the same transaction first renews it, which requires that it is
        still ours and unexpired, and then requires the round to be exactly the one after the ledger's last: a
        writer that lost its run, or skipped or repeated a round, gets LeaseLostError and writes nothing (it
        never returns False), so it cannot build a round on fills the ledger does not hold.
        """
        if lease is not None and lease.run_id != w.run_id:
            raise ValueError(f"the writer lease is for run {lease.run_id!r}, the round for run {w.run_id!r}")
        key = {"b_run": w.run_id}
        with self.engine.begin() as conn:
            if lease is not None:
                self._claim_next_round(conn, w, lease)
            elif conn.execute(_CLAIM_ROUND, {**key, "b_round": w.round_no}).rowcount != 1:
                if conn.execute(_RUN_EXISTS, key).first() is None:
                    raise KeyError(f"no run {w.run_id!r}")
                return False
            round_row = t.RoundRow(
                run_id=w.run_id,
                round_no=w.round_no,
                ts=w.ts,
                snapshot_hash=w.snapshot_hash,
                wall_started=w.wall_started,
                wall_s=w.wall_s,
            )
            _insert(conn, [round_row])
            if conn.execute(_SNAPSHOT_EXISTS, {"b_hash": w.snapshot_hash}).first() is None:
                _insert(conn, [t.SnapshotRow(snapshot_hash=w.snapshot_hash, ts=w.ts, content=w.snapshot_content)])
            new_prompts = _unique(w.prompts, lambda r: r.sha256)
            if new_prompts:
                known = set(conn.execute(_KNOWN_PROMPTS, {"b_shas": [p.sha256 for p in new_prompts]}).scalars())
                _insert(conn, [p for p in new_prompts if p.sha256 not in known])
            for rows in (w.llm_calls, w.decisions, w.orders, w.fills, w.equity, w.breakers, w.rejections):
                _insert(conn, rows)
            if w.accounts:
                conn.execute(_DELETE_POSITIONS, {**key, "b_agents": [acc.agent for acc in w.accounts]})
            held = []
            for acc in w.accounts:
                conditions = w.invalidations.get(acc.agent, {})
                for pos in acc.positions.values():
                    held.append(
                        t.PositionRow(
                            run_id=w.run_id,
                            agent=acc.agent,
                            invalidation=conditions.get(pos.symbol, ""),
                            **position_to_dict(pos),
                        )
                    )
            _insert(conn, held)
            for acc in w.accounts:
                row = _values(_account_row(w.run_id, acc))
                state = {k: v for k, v in row.items() if k not in ("run_id", "agent")}
                if conn.execute(_UPDATE_ACCOUNT, {**key, "b_agent": acc.agent, **state}).rowcount == 0:
                    _insert(conn, [_account_row(w.run_id, acc)])
        return True

    def _claim_next_round(self, conn: Connection, w: RoundWrite, lease: WriterLease) -> None:
        """Renew the lease and claim round `w.round_no` as the successor of the ledger's last, or raise."""
        now = self.clock.now_ns()
        if not leases.renew(conn, lease, now):
            raise leases.lost_lease(lease, leases.holder(conn, w.run_id), now, w.round_no)
        claim = {"b_run": w.run_id, "b_round": w.round_no, "b_previous": w.round_no - 1}
        if conn.execute(_CLAIM_NEXT_ROUND, claim).rowcount != 1:
            last = conn.execute(_LAST_ROUND, {"b_run": w.run_id}).scalar_one_or_none()
            if last is None:
                raise KeyError(f"no run {w.run_id!r}")
            raise leases.out_of_order(lease, w.round_no, int(last))

    # -- frames for the leaderboard, the CLI and the monitor --------------------------------------------------
    def frame(
        self, table: type[t.Base], run_id: str, agent: str | None = None, order: Iterable[str] = ()
    ) -> pd.DataFrame:
        """All rows of `table` for a run (and agent), as a DataFrame, in the given column order."""
        cols = [c.name for c in table.__table__.columns]
        stmt = select(table.__table__).where(table.__table__.c.run_id == run_id)
        if agent is not None:
            stmt = stmt.where(table.__table__.c.agent == agent)
        for c in order:
            stmt = stmt.order_by(table.__table__.c[c])
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return pd.DataFrame(rows, columns=cols)

    def equity_frame(self, run_id: str) -> pd.DataFrame:
        return self.frame(t.EquityRow, run_id, order=("agent", "round_no"))

    def fills_frame(self, run_id: str, agent: str | None = None) -> pd.DataFrame:
        return self.frame(t.FillRow, run_id, agent, order=("agent", "seq"))

    def decisions_frame(self, run_id: str, agent: str | None = None) -> pd.DataFrame:
        return self.frame(t.DecisionRow, run_id, agent, order=("round_no", "agent", "id"))

    def llm_calls_frame(self, run_id: str, agent: str | None = None) -> pd.DataFrame:
        return self.frame(t.LLMCallRow, run_id, agent, order=("round_no", "agent"))

    def rejections_frame(self, run_id: str, agent: str | None = None) -> pd.DataFrame:
        return self.frame(t.RejectionRow, run_id, agent, order=("round_no", "agent", "id"))

    def rounds_frame(self, run_id: str) -> pd.DataFrame:
        return self.frame(t.RoundRow, run_id, order=("round_no",))

    def prompt(self, sha256: str) -> t.PromptRow | None:
        with self.session() as s:
            return s.get(t.PromptRow, sha256)

    def count(self, table: type[t.Base], run_id: str) -> int:
        with self.session() as s:
            c = table.__table__.c
            return int(s.scalar(select(func.count()).select_from(table).where(c.run_id == run_id)) or 0)


def _account_row(run_id: str, acc: AccountState) -> t.AccountRow:
    return t.AccountRow(
        run_id=run_id,
        agent=acc.agent,
        last_round=acc.last_round,
        cash=acc.cash,
        realized_pnl=acc.realized_pnl,
        fees_paid=acc.fees_paid,
        funding_paid=acc.funding_paid,
        pending=[order_to_dict(o) for o in acc.pending],
        plans=acc.plans,
        broker_state=acc.broker_state,
    )


def _values(row: t.Base) -> dict[str, Any]:
    """The column values set on an ORM row; unset columns are left out, so their defaults apply as in a flush."""
    return {c.key: row.__dict__[c.key] for c in row.__table__.columns if c.key in row.__dict__}


@functools.cache
def _insert_statement(table: type[t.Base]) -> Insert:
    return insert(table)


def _insert(conn: Connection, rows: Sequence[t.Base]) -> None:
    """INSERT ORM rows of one table in their order, as few executemany calls as their sets of given columns allow."""
    batch: list[dict[str, Any]] = []
    for r in rows:
        values = _values(r)
        if batch and values.keys() != batch[0].keys():
            conn.execute(_insert_statement(type(r)), batch)
            batch = []
        batch.append(values)
    if batch:
        conn.execute(_insert_statement(type(rows[0])), batch)


def _unique(rows: Sequence[Any], key: Any) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for r in rows:
        k = key(r)
        if k not in seen:
            seen.add(k)
            out.append(r)
    return out
