"""Promotion: a gated, reversible alias on an MLflow registered model (design rule 8).

A run's registered model version gets `candidate`, `paper` or `live` only when the run clears the gates of
`configs/gates.yaml` (`evaluate_gates`), and `rollback` puts the previous holder back in one call. Flows then load
`models:/<name>@<alias>` and never a path. Modules: `config` (the gates file), `checks` (one check per gate),
`paper` (a version's paper record in the arena ledger, what `live` is judged on), `aliases` (promote, rollback,
history).
"""

from arena_lib.workflow.promotion.aliases import (
    HISTORY_TAG,
    PREVIOUS_TAG,
    REPORT_DIR,
    PromotionResult,
    RollbackError,
    RollbackResult,
    alias_history,
    promote,
    rollback,
)
from arena_lib.workflow.promotion.checks import (
    METRIC_NAMES,
    PAPER_SINCE_TAG,
    GateCheck,
    GateReport,
    ModelRef,
    PromotionError,
    evaluate_gates,
    find_model_version,
)
from arena_lib.workflow.promotion.config import (
    GATE_NAMES,
    Gates,
    GatesConfigError,
    LookaheadGate,
    PaperLedger,
    default_gates_path,
    load_gates,
)
from arena_lib.workflow.promotion.paper import PaperRecord, PaperSearch, find_paper_record

__all__ = [
    "GATE_NAMES",
    "HISTORY_TAG",
    "METRIC_NAMES",
    "PAPER_SINCE_TAG",
    "PREVIOUS_TAG",
    "REPORT_DIR",
    "GateCheck",
    "GateReport",
    "Gates",
    "GatesConfigError",
    "LookaheadGate",
    "ModelRef",
    "PaperLedger",
    "PaperRecord",
    "PaperSearch",
    "PromotionError",
    "PromotionResult",
    "RollbackError",
    "RollbackResult",
    "alias_history",
    "default_gates_path",
    "evaluate_gates",
    "find_model_version",
    "find_paper_record",
    "load_gates",
    "promote",
    "rollback",
]
