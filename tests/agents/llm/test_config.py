"""LLMAgentConfig: validation that names the bad field, key resolution from env and .env, status, cost, secrecy."""

from __future__ import annotations

import datetime
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from arena_lib.agents.llm.config import (
    LLMAgentConfig,
    LLMConfigError,
    configuration_status,
    load_llm_config,
    load_llm_configs,
    resolve_api_key,
    token_cost,
)

CONFIG_DIR = Path(__file__).resolve().parents[3] / "configs" / "llm"
SECRET = "sk-proj-SECRET-abcdefghijklmnop0123"


def write(tmp_path: Path, text: str, name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def make(**fields: Any) -> LLMAgentConfig:
    return LLMAgentConfig(**{"name": "a", "provider": "openai", "model": "gpt-x", **fields})


@pytest.fixture(autouse=True)
def _no_ambient_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not see the developer's real keys or .env file."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DEEPSEEK_API_KEY", "MY_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_per_provider() -> None:
    openai_cfg = make()
    assert openai_cfg.api_key_env == "OPENAI_API_KEY"
    assert openai_cfg.resolved_structured_output == "json_schema"
    assert (openai_cfg.temperature, openai_cfg.max_tokens, openai_cfg.timeout_s, openai_cfg.max_retries) == (
        0.0,
        1024,
        30.0,
        2,
    )
    claude = make(provider="anthropic")
    assert (claude.api_key_env, claude.resolved_structured_output) == ("ANTHROPIC_API_KEY", "tool")
    local = make(provider="openai_compatible", base_url="http://127.0.0.1:8000/v1/")
    assert (local.api_key_env, local.resolved_structured_output, local.needs_key) == (None, "json_object", False)
    assert local.base_url == "http://127.0.0.1:8000/v1"


def test_config_is_frozen() -> None:
    cfg = make()
    with pytest.raises(ValidationError):
        cfg.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("yaml_text", "field"),
    [
        ("name: a\nprovider: openai\nmodel: m\ntemperature: 3\n", "temperature"),
        ("name: a\nprovider: openai\nmodel: m\nmax_tokens: 0\n", "max_tokens"),
        ("name: a\nprovider: openai\nmodel: m\ntimeout_s: -1\n", "timeout_s"),
        ("name: a\nprovider: openai\nmodel: m\nmax_retries: -1\n", "max_retries"),
        ("name: a\nprovider: openai\nmodel: m\ncost_per_1m_input: -0.1\n", "cost_per_1m_input"),
        ("name: a\nprovider: cohere\nmodel: m\n", "provider"),
        ("name: a\nprovider: openai\nmodel: m\nstructured_output: xml\n", "structured_output"),
        ("name: a\nprovider: openai\nmodel: m\ntraining_cutoff: last spring\n", "training_cutoff"),
        ("name: a\nprovider: openai\nmodel: m\ntemprature: 0.5\n", "temprature"),
        ("name: a\nprovider: openai\nmodel: m\nbase_url: api.openai.com\n", "base_url"),
        ("name: a\nprovider: openai\nmodel: m\nextra_params: {temperature: 1}\n", "extra_params"),
        ("name: a\nprovider: openai\n", "model"),
    ],
)
def test_load_errors_name_the_file_and_the_field(tmp_path: Path, yaml_text: str, field: str) -> None:
    path = write(tmp_path, yaml_text)
    with pytest.raises(LLMConfigError) as info:
        load_llm_config(path)
    assert str(path) in str(info.value)
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"provider": "openai_compatible"}, "base_url is required"),
        ({"provider": "anthropic", "structured_output": "json_schema"}, "not available for provider anthropic"),
        ({"provider": "openai", "structured_output": "tool"}, "not available for provider openai"),
        ({"provider": "anthropic", "temperature": 1.5}, "temperature must be <= 1"),
        ({"provider": "openai", "api_key_env": None}, "api_key_env is required"),
    ],
)
def test_inconsistent_combinations_are_rejected(fields: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        make(**fields)


def test_a_key_pasted_as_the_variable_name_is_rejected_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as direct:
        make(api_key_env=SECRET)
    assert "api_key_env" in str(direct.value)
    assert SECRET not in str(direct.value)

    path = write(tmp_path, f"name: a\nprovider: openai\nmodel: m\napi_key_env: {SECRET}\n")
    with pytest.raises(LLMConfigError) as loaded:
        load_llm_config(path)
    assert "api_key_env" in str(loaded.value)
    assert SECRET not in str(loaded.value)


def test_bad_files_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_llm_config(tmp_path / "missing.yaml")
    with pytest.raises(LLMConfigError, match="invalid YAML"):
        load_llm_config(write(tmp_path, "name: [unclosed\n"))
    with pytest.raises(LLMConfigError, match="must be a mapping"):
        load_llm_config(write(tmp_path, "- a\n- b\n"))


def test_the_example_configs_load() -> None:
    configs = {c.name: c for c in load_llm_configs(CONFIG_DIR)}
    assert set(configs) == {"gpt-4o-mini", "claude-sonnet-4-5", "deepseek-chat", "smollm2-local"}
    assert configs["gpt-4o-mini"].training_cutoff == datetime.date(2023, 10, 1)
    assert configs["smollm2-local"].resolved_structured_output == "json_object_schema"
    assert configs["deepseek-chat"].api_key_env == "DEEPSEEK_API_KEY"


def test_load_many_from_a_list_and_refuse_duplicate_names(tmp_path: Path) -> None:
    a = write(tmp_path, "name: a\nprovider: openai\nmodel: m\n", "a.yaml")
    b = write(tmp_path, "name: b\nprovider: anthropic\nmodel: m\n", "b.yml")
    assert [c.name for c in load_llm_configs([a, b])] == ["a", "b"]
    assert [c.name for c in load_llm_configs(tmp_path)] == ["a", "b"]
    dup = write(tmp_path, "name: a\nprovider: anthropic\nmodel: other\n", "c.yaml")
    with pytest.raises(LLMConfigError, match="duplicate LLM agent name 'a'"):
        load_llm_configs([a, dup])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*\.yaml"):
        load_llm_configs(empty)


def test_key_resolution_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = make(api_key_env="MY_KEY")
    assert resolve_api_key(cfg) is None
    monkeypatch.setenv("MY_KEY", SECRET)
    assert resolve_api_key(cfg) == SECRET
    assert resolve_api_key(cfg, env={"MY_KEY": "sk-from-mapping"}) == "sk-from-mapping"


def test_key_resolution_falls_back_to_dotenv_without_loading_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"# local secrets\nMY_KEY={SECRET}\nOTHER=1\n")
    cfg = make(api_key_env="MY_KEY")
    assert resolve_api_key(cfg, env={}) == SECRET
    assert resolve_api_key(cfg, env={"MY_KEY": "sk-env-wins"}) == "sk-env-wins"
    assert "MY_KEY" not in os.environ  # read, never loaded into the process environment
    assert resolve_api_key(make(api_key_env="ABSENT"), env={}) is None


def test_configuration_status_names_the_variable(tmp_path: Path) -> None:
    cfg = make()
    status = configuration_status(cfg, env={})
    assert not status.configured
    assert status.reason == "not configured: set OPENAI_API_KEY (in the environment or .env)"

    ok = configuration_status(cfg, env={"OPENAI_API_KEY": SECRET})
    assert ok.configured
    assert "OPENAI_API_KEY" in ok.reason
    assert SECRET not in ok.reason

    local = make(provider="openai_compatible", base_url="http://127.0.0.1:8000/v1")
    assert configuration_status(local, env={}).configured
    hosted = make(provider="openai_compatible", base_url="https://api.deepseek.com/v1", api_key_env="DEEPSEEK_API_KEY")
    assert "DEEPSEEK_API_KEY" in configuration_status(hosted, env={}).reason


def test_token_cost_in_usd() -> None:
    cfg = make(cost_per_1m_input=3.0, cost_per_1m_output=15.0)
    assert token_cost(cfg, 2_000, 500) == pytest.approx(2_000 * 3e-6 + 500 * 15e-6)
    assert token_cost(make(), 10_000, 10_000) == 0.0
    with pytest.raises(ValueError, match="token counts"):
        token_cost(cfg, -1, 0)


def test_the_config_holds_only_the_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    cfg = make()
    assert resolve_api_key(cfg) == SECRET
    for text in (repr(cfg), str(cfg), cfg.model_dump_json()):
        assert SECRET not in text
        assert "OPENAI_API_KEY" in text
