"""The arena ledger's tables (SQLAlchemy 2.0): SQLite by default, PostgreSQL by URL.

One row per thing that happened, keyed so that re-executing a round after a crash writes nothing twice:
orders and fills are keyed by their deterministic ids (run/agent/round/symbol), rounds by (run, round number), and
an account's state row carries the last round it committed. A round's rows and the account states are written in
one transaction, so the ledger always ends on a whole round.

The tables are created and upgraded by the alembic migrations in `arena_lib/arena/migrations/` (see
`arena_lib.core.migrations`): a change here needs a new revision there, and a test checks that the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from arena_lib.core.migrations import MigrationSpec


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    """A competition run: its spec, mode and progress."""

    __tablename__ = "runs"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)  # epoch ns, wall clock
    mode: Mapped[str] = mapped_column(String(16))  # replay | paper | live
    status: Mapped[str] = mapped_column(String(16))  # running | completed | stopped | failed
    config: Mapped[dict] = mapped_column(JSON)  # the whole arena config, secrets excluded by construction
    spec_hash: Mapped[str] = mapped_column(String(64))
    data_hash: Mapped[str] = mapped_column(String(64), default="")
    symbols: Mapped[list] = mapped_column(JSON)
    timeframe: Mapped[str] = mapped_column(String(8))
    start: Mapped[str | None] = mapped_column(String(40), nullable=True)
    end: Mapped[str | None] = mapped_column(String(40), nullable=True)
    git_sha: Mapped[str] = mapped_column(String(64), default="")
    last_round: Mapped[int] = mapped_column(Integer, default=-1)
    message: Mapped[str] = mapped_column(Text, default="")


class RunAgentRow(Base):
    """An agent of a run, with its isolated account's identity and the flags the leaderboard shows."""

    __tablename__ = "run_agents"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id"), primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # llm | quant | ml
    provider: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str] = mapped_column(String(128), default="")
    prompt_version: Mapped[str] = mapped_column(String(32), default="")
    training_cutoff: Mapped[str | None] = mapped_column(String(10), nullable=True)
    cutoff_overlap: Mapped[bool] = mapped_column(Boolean, default=False)
    initial_cash: Mapped[float] = mapped_column(Float)
    params: Mapped[dict] = mapped_column(JSON, default=dict)


class AccountRow(Base):
    """An account's state after its last committed round: what a restart resumes from."""

    __tablename__ = "accounts"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_round: Mapped[int] = mapped_column(Integer)
    cash: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float)
    fees_paid: Mapped[float] = mapped_column(Float)
    funding_paid: Mapped[float] = mapped_column(Float)
    pending: Mapped[list] = mapped_column(JSON)  # orders queued for the next bar's open
    plans: Mapped[dict] = mapped_column(JSON)  # exit plans by symbol (profit target, stop, invalidation)
    broker_state: Mapped[dict] = mapped_column(JSON, default=dict)  # a live broker's cursors and exit orders (0003)


class PositionRow(Base):
    """An open position after the account's last committed round (rewritten each round)."""

    __tablename__ = "positions"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    quantity: Mapped[float] = mapped_column(Float)
    entry_price: Mapped[float] = mapped_column(Float)
    leverage: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    opened_at: Mapped[int] = mapped_column(BigInteger)
    liquidation_price: Mapped[float] = mapped_column(Float)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    entry_fee: Mapped[float] = mapped_column(Float)
    funding_paid: Mapped[float] = mapped_column(Float)
    invalidation: Mapped[str] = mapped_column(Text, default="")


class RoundRow(Base):
    __tablename__ = "rounds"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)  # decision time: the bar close, epoch ns
    snapshot_hash: Mapped[str] = mapped_column(String(64))
    wall_started: Mapped[int] = mapped_column(BigInteger)
    wall_s: Mapped[float] = mapped_column(Float)


class SnapshotRow(Base):
    """A snapshot's hash and compact content (each symbol's last bar and funding): enough to audit a round."""

    __tablename__ = "snapshots"
    snapshot_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[dict] = mapped_column(JSON)


class PromptRow(Base):
    __tablename__ = "prompts"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(String(32))
    system: Mapped[str] = mapped_column(Text)
    user: Mapped[str] = mapped_column(Text)


class LLMCallRow(Base):
    """One model call of a round: the raw response exactly as received, parse outcome, tokens, cost, latency."""

    __tablename__ = "llm_calls"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    prompt_sha: Mapped[str] = mapped_column(String(64))
    cache_key: Mapped[str] = mapped_column(String(64), default="")
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str] = mapped_column(Text, default="")
    parse_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    problems: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str] = mapped_column(Text, default="")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class DecisionRow(Base):
    """A decision as parsed, with the RiskEngine's verdict and the reasoning."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    round_no: Mapped[int] = mapped_column(Integer)
    agent: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    ts: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))  # agent | fallback | invalidation | breaker (halted)
    action: Mapped[str] = mapped_column(String(16))
    size: Mapped[float] = mapped_column(Float)
    size_unit: Mapped[str] = mapped_column(String(16))
    leverage: Mapped[float] = mapped_column(Float)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    invalidation: Mapped[str] = mapped_column(Text, default="")
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    risk_usd: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    approved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: a hold, nothing to review
    clamped: Mapped[bool] = mapped_column(Boolean, default=False)
    fraction: Mapped[float] = mapped_column(Float, default=0.0)
    verdict: Mapped[str] = mapped_column(Text, default="")
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    __table_args__ = (Index("ix_decisions_run_agent_round", "run_id", "agent", "round_no"),)


class OrderRow(Base):
    __tablename__ = "orders"
    order_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    round_no: Mapped[int] = mapped_column(Integer)
    symbol: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))
    fraction: Mapped[float] = mapped_column(Float)
    leverage: Mapped[float] = mapped_column(Float)
    stop_loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    take_profit: Mapped[float | None] = mapped_column(Float, nullable=True)
    reference_price: Mapped[float] = mapped_column(Float)
    created_at: Mapped[int] = mapped_column(BigInteger)


class FillRow(Base):
    """A fill. `margin` is the isolated margin posted (entries) or released (exits), so cash reconciles."""

    __tablename__ = "fills"
    fill_id: Mapped[str] = mapped_column(String(220), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    round_no: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)  # order within the account's history
    symbol: Mapped[str] = mapped_column(String(32))
    ts: Mapped[int] = mapped_column(BigInteger)
    side: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(16))
    quantity: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)
    fee: Mapped[float] = mapped_column(Float)
    realized_pnl: Mapped[float] = mapped_column(Float)
    funding: Mapped[float] = mapped_column(Float)
    leverage: Mapped[float] = mapped_column(Float)
    margin: Mapped[float] = mapped_column(Float)
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="engine")  # engine|order|exchange|manual|recovered (0003)
    __table_args__ = (Index("ix_fills_run_agent", "run_id", "agent", "seq"),)


class RejectionRow(Base):
    """An approved order that did not fill: refused before sending (an exchange minimum, a cap), refused by the
    exchange (with its own message), or without capacity in the simulator (revision 0003)."""

    __tablename__ = "rejections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    round_no: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str] = mapped_column(String(200))
    symbol: Mapped[str] = mapped_column(String(32))
    ts: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_rejections_run_agent", "run_id", "agent", "round_no"),)


class EquityRow(Base):
    __tablename__ = "equity"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger)
    cash: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)
    gross_exposure: Mapped[float] = mapped_column(Float)


class HaltRow(Base):
    """The kill switch: while `halted`, every trading job stops before its next round (scope "all")."""

    __tablename__ = "trading_halt"
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    halted: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(128), default="")
    at_ns: Mapped[int] = mapped_column(BigInteger)
    flatten: Mapped[bool] = mapped_column(Boolean, default=False)  # close every position too (revision 0003)


class BreakerRow(Base):
    """A circuit breaker's state change for one account (or the portfolio, agent "*"), appended, never updated.

    The latest row of an (run, agent) is its current state; older rows are the audit trail of trips, daily
    clears and operator resets. `state` is the account's effective state (`active`, `reducing`, `halted`) and
    `breaker`/`reason`/`since_ns` name the trip that causes it. `trips` holds every breaker tripped on the scope
    (name -> state, reason, since_ns, round_no) so a restart rebuilds them; `anchor_round`/`anchor_equity` say
    where an operator reset restarted the peak (-1/None: from the run's start), since the peaks and the day's
    starting equity are recomputed from the `equity` table rather than written every bar.
    """

    __tablename__ = "breakers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))  # an account, or "*" for the portfolio breaker
    state: Mapped[str] = mapped_column(String(16))  # active | reducing | halted
    breaker: Mapped[str] = mapped_column(String(32), default="")  # agent_drawdown | portfolio_drawdown | daily_loss
    reason: Mapped[str] = mapped_column(Text, default="")
    since_ns: Mapped[int] = mapped_column(BigInteger)  # when the state began: a bar close, or a reset's wall clock
    round_no: Mapped[int] = mapped_column(Integer)  # the round after which the change was made
    by: Mapped[str] = mapped_column(String(128), default="engine")  # "engine", or the operator who reset it
    trips: Mapped[dict] = mapped_column(JSON, default=dict)
    anchor_round: Mapped[int] = mapped_column(Integer, default=-1)
    anchor_equity: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (Index("ix_breakers_run_agent", "run_id", "agent", "id"),)


class WriterLeaseRow(Base):
    """Which process may write a run's ledger, until when (revision 0002; see `arena_lib.arena.lease`).

    One row per run, taken only when absent or expired, renewed inside every round's commit. No foreign key to
    `runs`: a lease can be taken before the run it guards is created.
    """

    __tablename__ = "writer_leases"
    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))  # host:pid:random token of the holding process
    acquired_at_ns: Mapped[int] = mapped_column(BigInteger)  # epoch ns, the store's clock
    expires_at_ns: Mapped[int] = mapped_column(BigInteger)


# The ledger's migration history. Revision 0001 is exactly the schema `create_all` made before migrations existed
# (commit 34b6861), so such a database is stamped with it and upgraded.
MIGRATIONS = MigrationSpec(
    name="arena ledger",
    script_location="arena_lib.arena:migrations",
    version_table="arena_alembic_version",
    metadata=Base.metadata,
    baseline="0001_baseline",
    baseline_tables=(
        "runs",
        "run_agents",
        "accounts",
        "positions",
        "rounds",
        "snapshots",
        "prompts",
        "llm_calls",
        "decisions",
        "orders",
        "fills",
        "equity",
        "trading_halt",
        "breakers",
    ),
)
