"""`Settings`: every variable maps to its field, defaults hang off one root, bad values read as sentences."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from arena_lib.core.config_errors import ConfigError
from arena_lib.core.settings import BUNDLED_SAMPLE_DIR, Settings, settings

# variable -> (field, what the test sets, what the field holds then)
VARIABLES: dict[str, tuple[str, str, Any]] = {
    "ARENA_HOME": ("home", "/tmp/arena-home", Path("/tmp/arena-home").resolve()),
    "ARENA_DB_URL": ("db_url", "postgresql+psycopg://u@db/arena", "postgresql+psycopg://u@db/arena"),
    "ARENA_LLM_CACHE_URL": ("llm_cache_url", "sqlite:////tmp/c.db", "sqlite:////tmp/c.db"),
    "ARENA_DATA_CACHE": ("data_cache", "/tmp/arena-cache", Path("/tmp/arena-cache").resolve()),
    "ARENA_DATA_DIR": ("data_dir", "/tmp/arena-sample", Path("/tmp/arena-sample").resolve()),
    "ARENA_DASK_ADDRESS": ("dask_address", "tcp://scheduler:8786", "tcp://scheduler:8786"),
    "ARENA_DASK_WORKERS": ("dask_workers", "3", 3),
    "ARENA_TRADE_CONFIG": ("trade_config", "configs/arena.demo.yaml", "configs/arena.demo.yaml"),
    "ARENA_TRADE_MODE": ("trade_mode", "replay", "replay"),
    "ARENA_MONITOR_TOKEN": ("monitor_token", "op-token-123", SecretStr("op-token-123")),
    "MLFLOW_TRACKING_URI": ("mlflow_tracking_uri", "http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    "MLFLOW_RUN_ID": ("mlflow_run_id", "abc123", "abc123"),
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Arena variable set (the suite's conftest sets ARENA_DATA_CACHE; it comes back after the test)."""
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_table_above_names_every_variable() -> None:
    assert set(VARIABLES) == set(Settings.variables())
    assert {field for field, _, _ in VARIABLES.values()} == set(Settings.model_fields)


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_every_variable_maps_to_its_field(clean_env: pytest.MonkeyPatch, variable: str) -> None:
    field, raw, expected = VARIABLES[variable]
    before = getattr(settings(), field)
    clean_env.setenv(variable, f"  {raw}  ")  # surrounding blanks are not part of a value
    now = settings()
    assert getattr(now, field) == expected
    assert getattr(now, field) != before
    assert settings().value_of(variable) == expected
    assert Settings.model_fields[field].description, f"{field} documents itself"


def test_every_field_is_read_fresh_and_blank_means_unset(clean_env: pytest.MonkeyPatch) -> None:
    assert settings().trade_mode == "paper"
    clean_env.setenv("ARENA_TRADE_MODE", "replay")
    assert settings().trade_mode == "replay"
    clean_env.setenv("ARENA_TRADE_MODE", "   ")
    assert settings().trade_mode == "paper"
    clean_env.setenv("ARENA_DB_URL", "")
    assert settings().db_url is None


def test_an_env_mapping_is_read_alone(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ARENA_TRADE_MODE", "replay")
    assert settings({}).trade_mode == "paper"
    assert settings({"ARENA_TRADE_MODE": "replay", "UNRELATED": "x"}).trade_mode == "replay"


def test_defaults_hang_off_one_root(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from arena_lib.core.database import local_url
    from arena_lib.core.paths import project_root
    from arena_lib.data.ingest import default_cache_root
    from arena_lib.data.sample import sample_dir
    from arena_lib.models.registry import artifact_root, default_tracking_uri, tracking_uri
    from arena_lib.workflow.promotion.config import default_gates_path

    root = (tmp_path / "home").resolve()
    clean_env.setenv("ARENA_HOME", str(root))
    s = settings()
    assert s.project_root == project_root() == root
    assert s.arena_dir == root / ".arena"
    assert (s.db_path, s.llm_cache_path, s.prefect_home) == (
        root / ".arena" / "arena.db",
        root / ".arena" / "llm_cache.db",
        root / ".arena" / "prefect",
    )
    assert s.mlflow_db_path == root / "mlruns" / "mlflow.db"
    assert s.data_cache_dir == default_cache_root() == root / "data" / "cache"
    assert (s.runs_dir, s.gates_path) == (root / "runs", default_gates_path())
    assert default_gates_path() == root / "configs" / "gates.yaml"
    assert local_url("ARENA_DB_URL", "arena.db") == f"sqlite:///{s.db_path}"
    assert local_url("ARENA_LLM_CACHE_URL", "llm_cache.db") == f"sqlite:///{s.llm_cache_path}"
    assert tracking_uri() == default_tracking_uri() == s.tracking_uri == f"sqlite:///{s.mlflow_db_path}"
    assert artifact_root() == root / "mlruns" / "artifacts"
    assert sample_dir() == s.sample_dir == BUNDLED_SAMPLE_DIR  # code, not state: it ships beside the package
    # Set variables win over the root.
    clean_env.setenv("ARENA_DB_URL", "sqlite:////elsewhere/a.db")
    clean_env.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert local_url("ARENA_DB_URL", "arena.db") == "sqlite:////elsewhere/a.db"
    assert tracking_uri() == "http://127.0.0.1:5000"
    with pytest.raises(KeyError, match="ARENA_NOPE is not an Arena setting"):
        local_url("ARENA_NOPE", "x.db")


def test_without_arena_home_the_root_is_found_upward_from_the_cwd(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "arena_lib").mkdir(parents=True)
    (project / "pyproject.toml").write_text("")
    (project / "notebooks").mkdir()
    clean_env.chdir(project / "notebooks")
    assert settings().project_root == project.resolve()
    clean_env.chdir(tmp_path)
    assert settings().project_root == tmp_path.resolve()  # no project above: the cwd


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("ARENA_TRADE_MODE", "real", "'ARENA_TRADE_MODE': must be 'paper', 'replay' or 'live' (got 'real')"),
        ("ARENA_DASK_WORKERS", "two", "'ARENA_DASK_WORKERS': must be a whole number (got 'two')"),
        ("ARENA_DASK_WORKERS", "0", "'ARENA_DASK_WORKERS': must be >= 1 (got '0')"),
        (
            "ARENA_DASK_ADDRESS",
            "scheduler:8786",
            "'ARENA_DASK_ADDRESS': must be a Dask scheduler address like tcp://host:8786 (got 'scheduler:8786')",
        ),
    ],
)
def test_bad_values_are_one_readable_config_error(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        settings()
    assert str(info.value) == f"environment: invalid settings: {message}"
    assert isinstance(info.value, ValueError)
    assert "errors.pydantic.dev" not in str(info.value)


def test_secrets_are_never_printed(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ARENA_MONITOR_TOKEN", "op-token-123")
    clean_env.setenv("ARENA_DB_URL", "postgresql://arena:db-password@db/arena")
    clean_env.setenv("MLFLOW_TRACKING_URI", "https://user:mlflow-password@mlflow.example")
    s = settings()
    for shown in (repr(s), str(s)):
        for secret in ("op-token-123", "db-password", "mlflow-password"):
            assert secret not in shown
    assert isinstance(s.monitor_token, SecretStr)
    assert s.monitor_token.get_secret_value() == "op-token-123"


def test_importing_settings_is_cheap() -> None:
    code = "import sys, arena_lib.core.settings; print(sorted({'pandas', 'numpy', 'sqlalchemy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
