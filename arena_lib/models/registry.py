"""Where the MLflow store is, and how a registered model is named by alias.

Why on the models floor: the ML agent loads `models:/<name>@<alias>` and the flows promote by alias; both need the
same store and the same alias names, and the agent layer may not import the workflow layer that logs runs.
mlflow is imported only inside `configure`.
"""

from __future__ import annotations

from pathlib import Path

from arena_lib.core.settings import settings

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
"""The variable that names the tracking store (`Settings.mlflow_tracking_uri`)."""
ALIASES = ("candidate", "paper", "live")


def default_tracking_uri() -> str:
    """`sqlite:///<project root>/mlruns/mlflow.db` as an absolute path (MLflow 3's file store is deprecated)."""
    path = settings().mlflow_db_path
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.as_posix()}"


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` when set (a server, PostgreSQL, another file), else the project's sqlite default."""
    return settings().mlflow_tracking_uri or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw).resolve()


def artifact_root() -> Path:
    """Where local runs keep artifacts: `artifacts/` beside the sqlite database (`<root>/mlruns/artifacts` by default).

    A tracking server decides its own artifact store; this folder is only used for local sqlite stores.
    """
    db = sqlite_path(tracking_uri())
    return db.parent / "artifacts" if db is not None else settings().mlruns_dir / "artifacts"


def configure() -> str:
    """Point mlflow's tracking and registry at `tracking_uri()` and return it. Cheap; call it before any MLflow use.

    mlflow also exports the URI as `MLFLOW_TRACKING_URI`, so subprocesses (notebook kernels) inherit it.
    """
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def check_alias(alias: str) -> None:
    if alias not in ALIASES:
        raise ValueError(f"unknown model alias {alias!r}: use one of {', '.join(ALIASES)}")


def model_uri(name: str, alias: str) -> str:
    """`models:/<name>@<alias>`: how flows load a promoted model (by alias, never by path)."""
    check_alias(alias)
    if not name:
        raise ValueError("registered model name must be non-empty")
    return f"models:/{name}@{alias}"
