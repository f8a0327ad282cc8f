"""MLflow tracking: where the store lives, what every run logs, and the registry aliases that promotion moves.

This is the one module that knows where MLflow lives. Every run that produces a number (design rule 5) goes through
`start_run`, so every run carries the same provenance: git SHA and dirty flag, data hash, package version and the
full spec as `spec.json`. Secrets never reach MLflow: `redact` masks them before anything is logged.

A notebook executed by `workflow.notebooks.run_notebook` gets `MLFLOW_RUN_ID` in its environment, and `start_run`
then resumes that run instead of opening a new one, so what the notebook logs lands next to the executed notebook.

mlflow is imported inside the functions: importing it costs seconds, and importing this module must stay cheap
(the CLI imports it for `arena mlflow uri`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena_lib.core.paths import git_state, project_root
from arena_lib.core.settings import settings
from arena_lib.models.registry import (
    ALIASES,
    TRACKING_URI_ENV,
    artifact_root,
    configure,
    default_tracking_uri,
    model_uri,
    sqlite_path,
    tracking_uri,
)
from arena_lib.models.registry import check_alias as _check_alias

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import ActiveRun, MlflowClient
    from mlflow.models.model import ModelInfo

    from arena_lib.models.estimators import Model

log = logging.getLogger(__name__)

RUN_ID_ENV = "MLFLOW_RUN_ID"
REDACTED = "***"

# MLflow's own limits (mlflow.utils.validation): longer values are rejected, so we cut them ourselves and say so.
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
_TRUNCATED = "...[truncated {n} chars]"

# Secret-looking keys, matched on snake_case words so that `max_tokens` or `token_limit` stay visible while
# `api_key`, `apiKey`, `OPENAI_API_KEY`, `client_secret`, `hf_token` and `db_password` are masked.
_SECRET_KEY = re.compile(
    r"(^|_)(api_?keys?|secrets?|passwords?|passwd|passphrase|private_?key|authorization|credentials?)($|_)"
    r"|(^|_)token$"
)
# `scheme://user:password@host`: the user-info part is masked, the host stays readable.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s:@]*:[^/\s@]*@")
# Provider key formats: OpenAI/Anthropic (`sk-`), GitHub (`ghp_`, `github_pat_`), Hugging Face (`hf_`), bearer tokens.
_TOKEN_VALUE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{16,}|ghp_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|hf_[A-Za-z0-9]{20,})"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-~+/]{16,}=*"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_BAD_KEY_CHARS = re.compile(r"[^\w\-./ :]")


def client() -> MlflowClient:
    """An `MlflowClient` on the configured store."""
    from mlflow import MlflowClient

    uri = configure()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(name: str) -> str:
    """Get or create the experiment `name`; a deleted one of that name is restored rather than shadowed.

    Against a local sqlite store the artifact location is pinned to `artifact_root()/<name>`: MLflow would otherwise
    put artifacts under `./mlruns` relative to whatever the cwd happens to be.
    """
    from mlflow.exceptions import MlflowException

    if not name or not name.strip():
        raise ValueError("experiment name must be a non-empty string")
    mlc = client()
    found = mlc.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            log.warning("restoring deleted MLflow experiment %r", name)
            mlc.restore_experiment(found.experiment_id)
        return str(found.experiment_id)
    location = None
    if sqlite_path(tracking_uri()) is not None:
        slug = re.sub(r"[^A-Za-z0-9._\-]+", "_", name).strip("._") or "experiment"
        location = (artifact_root() / slug).as_uri()
    try:
        return str(mlc.create_experiment(name, artifact_location=location))
    except MlflowException as exc:  # another process created it between our get and create
        found = mlc.get_experiment_by_name(name)
        if found is None:
            raise
        log.debug("experiment %r created concurrently: %s", name, exc)
        return str(found.experiment_id)


# ------------------------------------------------------------------------------------------------------ provenance
def arena_version() -> str:
    """The installed `arena` package version ('unknown' when running from a bare checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("arena")
    except PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------------------------------------------- redaction
def is_secret_key(key: object) -> bool:
    """True for names like api_key, apiKey, OPENAI_API_KEY, client_secret, hf_token, password, authorization."""
    words = _CAMEL.sub("_", str(key)).lower()
    words = re.sub(r"[^a-z0-9]+", "_", words)
    return bool(_SECRET_KEY.search(words))


def looks_secret(value: str) -> bool:
    """True when the text holds URL credentials (`user:pass@`) or a provider key/bearer token."""
    return bool(_URL_CREDENTIALS.search(value) or _TOKEN_VALUE.search(value))


def redact_text(value: str) -> str:
    """Mask URL credentials (`postgresql://***@host/db`) and provider keys inside a string."""
    masked = _URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", value)
    return _TOKEN_VALUE.sub(REDACTED, masked)


def redact(obj: Any) -> Any:
    """A copy of `obj` (mappings, lists, tuples, strings nested freely) with secret keys and values masked.

    Any value under a secret-looking key becomes "***" whatever its type; strings elsewhere lose URL credentials and
    provider keys. Everything params, tags and `spec.json` carry passes through here first.
    """
    if isinstance(obj, Mapping):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = [redact(v) for v in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


# ------------------------------------------------------------------------------------------------ params and tags
def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = limit - len(_TRUNCATED.format(n=len(text)))
    return text[:cut] + _TRUNCATED.format(n=len(text) - cut)


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return json.dumps(list(value), default=str)
    if isinstance(value, Mapping):  # only empty mappings get here
        return json.dumps(dict(value), default=str)
    return str(value)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings to MLflow params: dotted keys, text values (lists as JSON), cut to MLflow's length limit.

    Characters MLflow rejects in a key become `_`. Values are not redacted here; `start_run` redacts first.
    """
    flat: dict[str, str] = {}
    for raw_key, value in params.items():
        key = _BAD_KEY_CHARS.sub("_", str(raw_key))
        key = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, key))
        else:
            flat[key] = _clip(_param_text(value), MAX_PARAM_LENGTH)
    return flat


def _provenance_tags(data_hash: str | None) -> dict[str, str]:
    sha, dirty = git_state()
    tags = {
        "arena.git_sha": sha or "unknown",
        "arena.git_dirty": "true" if dirty else "false",
        "arena.version": arena_version(),
    }
    if sha:
        tags["mlflow.source.git.commit"] = sha
    if data_hash is not None:
        tags["arena.data_hash"] = str(data_hash)
    return tags


def _log_context(
    run_id: str,
    *,
    params: Mapping[str, Any] | None,
    spec: Mapping[str, Any] | None,
    data_hash: str | None,
    tags: Mapping[str, Any] | None,
    resumed: bool,
) -> None:
    from mlflow.entities import Param, RunTag

    mlc = client()
    flat = flatten_params(redact(dict(params or {})))
    if resumed and flat:
        # MLflow params are write-once: re-logging an equal value is skipped, a different one is a clear error.
        existing = mlc.get_run(run_id).data.params
        clashes = {k: (existing[k], v) for k, v in flat.items() if k in existing and existing[k] != v}
        if clashes:
            detail = ", ".join(f"{k}: run has {old!r}, new value {new!r}" for k, (old, new) in clashes.items())
            raise ValueError(f"run {run_id} already holds different values for params ({detail})")
        flat = {k: v for k, v in flat.items() if k not in existing}
    all_tags = {**{str(k): _param_text(v) for k, v in redact(dict(tags or {})).items()}, **_provenance_tags(data_hash)}
    mlc.log_batch(
        run_id,
        params=[Param(k, v) for k, v in flat.items()],
        tags=[RunTag(k, _clip(v, MAX_TAG_LENGTH)) for k, v in all_tags.items()],
    )
    if spec is not None:
        text = json.dumps(redact(dict(spec)), indent=2, sort_keys=True, default=str)
        mlc.log_text(run_id, text, "spec.json")


# ------------------------------------------------------------------------------------------------------------ runs
@contextmanager
def start_run(
    experiment: str,
    *,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    spec: Mapping[str, Any] | None = None,
    data_hash: str | None = None,
    tags: Mapping[str, Any] | None = None,
    nested: bool = False,
    resume: bool = True,
) -> Iterator[ActiveRun]:
    """Open (or resume) an MLflow run that logs params, `spec.json` and provenance tags; yields the active run.

    With `MLFLOW_RUN_ID` set and no run active, the run it names is resumed (that is how a notebook run by
    `run_notebook` logs into the run holding the executed notebook); `experiment` and `run_name` are then ignored,
    and on exit the run is detached but left RUNNING, because its owner sets the final status. `resume=False`
    always opens a new run (a child of the `MLFLOW_RUN_ID` run when there is one). A new run ends FINISHED, or
    FAILED when the block raises.
    """
    import mlflow

    configure()
    active = mlflow.active_run()
    resume_id = settings().mlflow_run_id or ""
    resumed = bool(resume and resume_id and active is None)
    if resumed:
        run = mlflow.start_run(run_id=resume_id)
    else:
        if active is not None and not nested:
            raise RuntimeError(
                f"MLflow run {active.info.run_id} is already active: end it, or pass nested=True for a child run"
            )
        exp_id = experiment_id(experiment)
        run_tags = {"mlflow.parentRunId": resume_id} if resume_id and active is None else {}
        outer = os.environ.pop(RUN_ID_ENV, None)  # else mlflow.start_run would resume it instead of creating
        try:
            run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, nested=nested, tags=run_tags)
        finally:
            if outer is not None:
                os.environ[RUN_ID_ENV] = outer
    run_id = run.info.run_id
    try:
        _log_context(run_id, params=params, spec=spec, data_hash=data_hash, tags=tags, resumed=resumed)
        yield run
    except BaseException as exc:
        _close(run_id, resumed, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    else:
        _close(run_id, resumed, "FINISHED")


def _close(run_id: str, resumed: bool, status: str) -> None:
    """End our run (and any child the block left open); a resumed run is detached and stays RUNNING."""
    import mlflow

    while (top := mlflow.active_run()) is not None and top.info.run_id != run_id:
        mlflow.end_run(status)
    if mlflow.active_run() is None:
        return
    if resumed:
        mlflow.end_run("RUNNING")  # pops it from mlflow's stack without claiming a final status
        os.environ[RUN_ID_ENV] = run_id  # end_run unsets it; later cells resume the same run
    else:
        mlflow.end_run(status)


def _require_run(run_id: str | None) -> str:
    import mlflow

    if run_id:
        configure()
        return run_id
    active = mlflow.active_run()
    if active is None:
        raise RuntimeError("no active MLflow run: log inside `with tracking.start_run(...)` or pass run_id=")
    return str(active.info.run_id)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None, *, run_id: str | None = None) -> dict[str, float]:
    """Log numeric metrics to the active run (or `run_id`); NaN and ±inf are dropped with a warning, not logged.

    MLflow would store NaN, and inf as ±1.8e308, which then poison charts and comparisons. Returns what was logged.
    A non-numeric value is a TypeError naming its key.
    """
    import mlflow

    target = _require_run(run_id)
    logged: dict[str, float] = {}
    dropped: list[str] = []
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {key!r} must be a number, got {type(value).__name__}: {value!r}") from None
        if math.isfinite(number):
            logged[_BAD_KEY_CHARS.sub("_", str(key))] = number
        else:
            dropped.append(f"{key}={number}")
    if dropped:
        log.warning("not logging non-finite metrics: %s", ", ".join(dropped))
    if logged:
        mlflow.log_metrics(logged, step=step, run_id=target)
    return logged


def log_figure(fig: Any, name: str, *, run_id: str | None = None) -> str:
    """Log a plotly figure (`.html` by default, plotly.js from its CDN) or a matplotlib figure (`.png` by default).

    Returns the artifact path. Other objects are a TypeError.
    """
    module = type(fig).__module__
    if module.startswith("plotly") and hasattr(fig, "write_html"):
        default_ext = ".html"
    elif module.startswith("matplotlib") and hasattr(fig, "savefig"):
        default_ext = ".png"
    else:
        raise TypeError(f"log_figure takes a plotly or matplotlib figure, got {type(fig).__qualname__} ({module})")
    artifact = name if Path(name).suffix else name + default_ext
    client().log_figure(_require_run(run_id), fig, artifact)
    return artifact


def log_frame(frame: Any, name: str, *, run_id: str | None = None) -> str:
    """Log a pandas frame as a parquet (default, keeps dtypes and the index) or `.csv` artifact; returns its path."""
    suffix = Path(name).suffix.lower()
    artifact = name if suffix else name + ".parquet"
    if suffix not in ("", ".parquet", ".csv"):
        raise ValueError(f"log_frame writes .parquet or .csv, got {name!r}")
    target = _require_run(run_id)
    with tempfile.TemporaryDirectory(prefix="arena-frame-") as tmp:
        local = Path(tmp) / Path(artifact).name
        if local.suffix == ".csv":
            frame.to_csv(local)
        else:
            frame.to_parquet(local)
        folder = Path(artifact).parent.as_posix()
        client().log_artifact(target, str(local), artifact_path=None if folder == "." else folder)
    return artifact


# -------------------------------------------------------------------------------------------------------- registry


def register_model(
    model_uri: str, name: str, *, alias: str | None = "candidate", tags: Mapping[str, Any] | None = None
) -> str:
    """Register `model_uri` (`models:/m-...` from `log_model`, or `runs:/<id>/<path>`) as a new version of `name`.

    The new version gets `alias` (default "candidate"; None for none). Returns the version number as text.
    """
    import mlflow

    if alias is not None:
        _check_alias(alias)
    configure()
    version = mlflow.register_model(
        model_uri, name, tags={k: _param_text(v) for k, v in redact(dict(tags or {})).items()}
    )
    if alias is not None:
        set_alias(name, alias, version.version)
    return str(version.version)


def set_alias(name: str, alias: str, version: str | int) -> None:
    """Point `alias` of registered model `name` at `version` (moving it if another version held it)."""
    _check_alias(alias)
    client().set_registered_model_alias(name, alias, str(version))


def remove_alias(name: str, alias: str) -> None:
    """Take `alias` off registered model `name` (the reversible half of promotion)."""
    _check_alias(alias)
    client().delete_registered_model_alias(name, alias)


def alias_version(name: str, alias: str) -> str | None:
    """The version of `name` that holds `alias`, or None when no version does (or the model does not exist)."""
    from mlflow.exceptions import MlflowException

    _check_alias(alias)
    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(exc).lower():
            return None
        raise


def register_trained_model(
    model: Model,
    X_example: pd.DataFrame,
    registered_name: str,
    *,
    alias: str = "candidate",
    trading_rule: Mapping[str, Any] | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> tuple[ModelInfo, str]:
    """Log `model` to the active run and register it as `registered_name` with `alias` (a new version).

    `trading_rule` (`threshold`, `fraction`, `allow_short`: how the predictions were traded when the model was
    validated) is stored as `arena_threshold` etc., and the ML agent trades by it unless told otherwise, so a
    promoted model keeps the rule that earned its promotion. Returns the logged model's info and the version.
    """
    from arena_lib.models.store import log_model

    rule = {f"arena_{k}": v for k, v in dict(trading_rule or {}).items()}
    unknown = sorted(set(rule) - {"arena_threshold", "arena_fraction", "arena_allow_short"})
    if unknown:
        raise ValueError(f"trading_rule keys are threshold, fraction and allow_short; got {unknown}")
    info = log_model(model, X_example, extra_metadata={**dict(extra_metadata or {}), **rule})
    version = register_model(info.model_uri, registered_name, alias=alias)
    return info, version


__all__ = [
    "ALIASES",
    "TRACKING_URI_ENV",
    "artifact_root",
    "configure",
    "default_tracking_uri",
    "model_uri",
    "project_root",  # notebooks name their output folders with `tracking.project_root()`
    "tracking_uri",
]
