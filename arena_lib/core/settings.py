"""`Settings`: every `ARENA_*` and `MLFLOW_*` variable Arena reads, and every default path, off one project root.

Why one object: the stores, the caches, MLflow, the sweeps' Dask cluster, the trade job and the monitor's kill
switch each used to read their own variable in their own way (blank meant unset here, not there; a bad value failed
deep inside a run). Here each variable is a typed, documented field, read in one place and validated once, with
one readable message (`ConfigError`) for a bad value. Paths that are not set hang off `project_root`, so the store,
the LLM cache, `mlruns/` and the data cache are the same files whether `arena` runs in the project folder, a
notebook kernel in `notebooks/`, or the monitor in `apps/`.

`settings()` reads the environment afresh on every call (about 0.2 ms), so tests can `monkeypatch.setenv` and
deployments can change a variable without reimporting anything. Secrets are `SecretStr`, and URLs that may carry
credentials are kept out of `repr`, so printing a `Settings` never shows them.

Variables of other programs (`PREFECT_*`, provider API keys named by an agent config) are not read here: their
owners read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from arena_lib.core.config_errors import ConfigError, problems_from_validation

__all__ = ["BUNDLED_SAMPLE_DIR", "Settings", "TradeMode", "settings"]

BUNDLED_SAMPLE_DIR = Path(__file__).resolve().parents[2] / "data" / "sample"
"""The real-data sample that ships with the code. It sits beside the package, not under the project root, because it
is part of the code (like the prompts), while the root holds this checkout's state (stores, runs, caches)."""

TradeMode = Literal["paper", "replay", "live"]


class Settings(BaseSettings):
    """Arena's environment. Field aliases are the variable names; each field's description says what it does."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    home: Path | None = Field(
        None,
        alias="ARENA_HOME",
        description="the project root; unset: the nearest folder up from the cwd with pyproject.toml and arena_lib/",
    )
    db_url: str | None = Field(
        None,
        alias="ARENA_DB_URL",
        repr=False,
        description="SQLAlchemy URL of the arena store (PostgreSQL at scale); unset: sqlite .arena/arena.db",
    )
    llm_cache_url: str | None = Field(
        None,
        alias="ARENA_LLM_CACHE_URL",
        repr=False,
        description="SQLAlchemy URL of the LLM response cache; unset: sqlite .arena/llm_cache.db",
    )
    data_cache: Path | None = Field(
        None,
        alias="ARENA_DATA_CACHE",
        description="folder of the ingest flow's candle and funding cache; unset: <root>/data/cache",
    )
    data_dir: Path | None = Field(
        None,
        alias="ARENA_DATA_DIR",
        description="folder holding the market-data sample; unset: the bundled data/sample",
    )
    dask_address: str | None = Field(
        None,
        alias="ARENA_DASK_ADDRESS",
        description="a running Dask scheduler for sweeps (tcp://host:8786); unset: a local cluster",
    )
    dask_workers: int | None = Field(
        None,
        alias="ARENA_DASK_WORKERS",
        ge=1,
        description="worker processes of a sweep's local Dask cluster; unset: one per core",
    )
    trade_config: str = Field(
        "configs/arena.paper.yaml",
        alias="ARENA_TRADE_CONFIG",
        min_length=1,
        description="arena YAML of the scheduled trade job, relative to the project root unless absolute",
    )
    trade_mode: TradeMode = Field(
        "paper",
        alias="ARENA_TRADE_MODE",
        description="mode of the scheduled trade job: paper (live candles, simulated fills), replay, or live "
        "(real orders, behind the latch: see README, Live trading)",
    )
    monitor_token: SecretStr | None = Field(
        None,
        alias="ARENA_MONITOR_TOKEN",
        description="operator token that arms the monitor's kill switch; unset: the monitor is read-only",
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        alias="MLFLOW_TRACKING_URI",
        repr=False,
        description="MLflow tracking store (a server or a database); unset: sqlite <root>/mlruns/mlflow.db",
    )
    mlflow_run_id: str | None = Field(
        None,
        alias="MLFLOW_RUN_ID",
        description="an MLflow run to resume; set by `arena notebook` for the kernel it starts",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Arguments, then the process environment. No .env file: keys in .env are read by their owners only."""
        return init_settings, env_settings

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """`ARENA_X="  "` means unset, as `ARENA_X=""` does, and values lose surrounding blanks."""
        if not isinstance(data, Mapping):
            return data
        out = {}
        for key, value in data.items():
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            out[key] = value
        return out

    @field_validator("home", "data_cache", "data_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("dask_address")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("tcp://", "tls://", "inproc://", "ucx://", "ws://", "wss://")):
            raise ValueError("must be a Dask scheduler address like tcp://host:8786")
        return value

    # ---------------------------------------------------------------------------------------------------- paths
    @property
    def project_root(self) -> Path:
        """`ARENA_HOME`, else the nearest folder upward from the cwd holding `pyproject.toml` and `arena_lib/`, else
        the cwd. Walking upward lets a notebook kernel whose cwd is `notebooks/` use the project's stores."""
        if self.home is not None:
            return self.home
        cwd = Path.cwd().resolve()
        for folder in (cwd, *cwd.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "arena_lib").is_dir():
                return folder
        return cwd

    @property
    def arena_dir(self) -> Path:
        """`<root>/.arena`: the local state (SQLite stores, Prefect's home)."""
        return self.project_root / ".arena"

    @property
    def db_path(self) -> Path:
        """The arena store's SQLite file when `ARENA_DB_URL` is unset."""
        return self.arena_dir / "arena.db"

    @property
    def llm_cache_path(self) -> Path:
        """The LLM response cache's SQLite file when `ARENA_LLM_CACHE_URL` is unset."""
        return self.arena_dir / "llm_cache.db"

    @property
    def prefect_home(self) -> Path:
        """Default `PREFECT_HOME` for Arena's flows (Prefect's own variable wins when set)."""
        return self.arena_dir / "prefect"

    @property
    def mlruns_dir(self) -> Path:
        """`<root>/mlruns`: the local MLflow store (database and artifacts)."""
        return self.project_root / "mlruns"

    @property
    def mlflow_db_path(self) -> Path:
        """The local MLflow database used when `MLFLOW_TRACKING_URI` is unset."""
        return self.mlruns_dir / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI`, else `sqlite:///<root>/mlruns/mlflow.db` (MLflow 3's file store is deprecated)."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.mlflow_db_path.as_posix()}"

    @property
    def data_cache_dir(self) -> Path:
        """`ARENA_DATA_CACHE`, else `<root>/data/cache`."""
        return self.data_cache if self.data_cache is not None else self.project_root / "data" / "cache"

    @property
    def sample_dir(self) -> Path:
        """`ARENA_DATA_DIR`, else the bundled sample (`BUNDLED_SAMPLE_DIR`)."""
        return self.data_dir if self.data_dir is not None else BUNDLED_SAMPLE_DIR

    @property
    def runs_dir(self) -> Path:
        """`<root>/runs`: backtest, demo and notebook outputs."""
        return self.project_root / "runs"

    @property
    def configs_dir(self) -> Path:
        """`<root>/configs`: the project's YAML configs."""
        return self.project_root / "configs"

    @property
    def gates_path(self) -> Path:
        """`<root>/configs/gates.yaml`: the promotion gates."""
        return self.configs_dir / "gates.yaml"

    # ---------------------------------------------------------------------------------------------------- lookups
    @classmethod
    def variables(cls) -> dict[str, str]:
        """Variable name -> field name, for every variable read here."""
        return {info.alias or name: name for name, info in cls.model_fields.items()}

    def value_of(self, variable: str) -> Any:
        """The value of the field that `variable` sets (a SecretStr stays wrapped); KeyError for other names."""
        names = self.variables()
        if variable not in names:
            raise KeyError(f"{variable} is not an Arena setting; known: {', '.join(sorted(names))}")
        return getattr(self, names[variable])


class _MappingSettings(Settings):
    """Settings from a given mapping only (tests, and functions that take an `env=` mapping); no process env."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings now: from the process environment, or from `env` alone when given. A new object each call.

    Raises ConfigError (a ValueError) naming each bad variable, e.g.
    `environment: invalid settings: 'ARENA_TRADE_MODE': must be 'paper', 'replay' or 'live' (got 'real')`.
    """
    try:
        if env is None:
            return Settings()
        known = Settings.variables()
        given: dict[str, Any] = {k: v for k, v in env.items() if k in known}
        return _MappingSettings(**given)
    except ValidationError as exc:
        source = "environment" if env is None else "settings mapping"
        raise ConfigError.invalid(source, "settings", problems_from_validation(exc, Settings)) from None


def env_secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """A secret from the variable `name`: in `env` (default: os.environ), then in `./.env`; None when unset.

    The .env file is only read (python-dotenv's `dotenv_values`), never loaded into os.environ, so keys do not
    leak to child processes. LLM API keys and exchange keys are both read this way.
    """
    source = os.environ if env is None else env
    value = source.get(name)
    if not value:
        dotenv_file = Path.cwd() / ".env"
        if dotenv_file.is_file():
            value = dotenv_values(dotenv_file).get(name)
    return value.strip() if value and value.strip() else None
