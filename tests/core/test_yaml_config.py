"""The one YAML loader: every config type fails the same way, naming the file, the line, the key and the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from arena_lib.agents.llm.config import load_llm_config
from arena_lib.arena.config import load_arena_config
from arena_lib.core.config import BacktestConfig, load_config
from arena_lib.core.config_errors import ConfigError, ConfigFileNotFoundError
from arena_lib.core.spec import load_competition
from arena_lib.core.yaml_config import load_yaml_model, read_yaml_document
from arena_lib.workflow.promotion.config import load_gates

MARKET = 'symbols: [BTC/USDT]\ntimeframe: 1h\nstart: "2025-01-01"\nend: "2025-01-08"\n'
LLM = "name: a\nprovider: openai\nmodel: m\n"
GATES = (
    "version: 1\nmin_oos_trades: 30\nmin_sharpe_margin: 0.1\nmax_pbo: 0.5\nmin_deflated_sharpe: 0.95\n"
    "max_drawdown: -0.3\nlookahead: null\nllm_cutoff: true\nmin_paper_days: 14\n"
)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------- the file itself
def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "timeframe: 1h\nsymbols: [BTC/USDT\nstart: x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert (err.source, err.line, err.column) == (str(path), 3, 6)
    assert str(err) == (
        f"{path}: invalid YAML in backtest config at line 3, column 6: "
        "expected ',' or ']', but got ':' (while parsing a flow sequence)"
    )


def test_a_key_given_twice_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, "timeframe: 1h\ncosts: {fee_bps: 1}\ntimeframe: 4h\n")
    with pytest.raises(
        ConfigError, match=r"at line 3, column 1: the key 'timeframe' is given twice \(first on line 1\)"
    ):
        load_config(path)


def test_a_missing_file_is_a_config_error_and_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileNotFoundError) as info:
        load_config(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: backtest config not found"
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match="is a folder"):
        load_config(tmp_path)


def test_the_top_level_must_be_a_mapping_and_an_empty_file_is_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid backtest config: the top level must be a mapping .*, got a list"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    assert load_config(write(tmp_path, "")) == BacktestConfig()


# ------------------------------------------------------------------------------------------- validation errors
def test_an_unknown_key_gives_the_key_path_its_line_and_the_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, MARKET + "costs:\n  fee_bps: 2\n  slipage_bps: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: invalid backtest config: line 7: unknown key 'costs.slipage_bps' (did you mean 'slippage_bps'?)"
    )
    assert [(p.key, p.line) for p in info.value.problems] == [("costs.slipage_bps", 7)]


def test_an_unknown_key_without_a_close_match_lists_the_accepted_keys_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "colour: red\nshape: round\n"))
    message = str(info.value)
    assert "line 1: unknown key 'colour' (accepted here: symbols, timeframe, start, end, costs, execution, risk)" in (
        message
    )
    assert message.endswith("; line 2: unknown key 'shape'")


def test_a_negative_fee_and_reversed_dates_are_explained_in_words(tmp_path: Path) -> None:
    path = write(tmp_path, MARKET + "costs: {fee_bps: -1}\n")
    with pytest.raises(ConfigError) as fee:
        load_config(path)
    assert str(fee.value) == f"{path}: invalid backtest config: line 5: 'costs.fee_bps': must be >= 0 (got -1)"
    path = write(tmp_path, 'start: "2025-02-01"\nend: "2025-01-01"\n')
    with pytest.raises(ConfigError) as dates:
        load_config(path)
    assert str(dates.value) == f"{path}: invalid backtest config: start 2025-02-01 must be before end 2025-01-01"
    for err in (fee.value, dates.value):
        assert "Input should" not in str(err)
        assert "pydantic.dev" not in str(err)


def test_more_plain_reasons(tmp_path: Path) -> None:
    cases = {
        "start: last spring\n": (
            "'start': must be a date or time like 2025-01-31 or 2025-01-31T12:00 (got 'last spring')"
        ),
        "execution: {fill: later}\n": "'execution.fill': must be 'next_open' or 'close' (got 'later')",
        "risk: {max_leverage: lots}\n": "'risk.max_leverage': must be a number (got 'lots')",
        "symbols: 5\n": "'symbols': must be a list (got 5)",
        "costs: 3\n": "'costs': must be a mapping of keys to values (got 3)",
    }
    for text, problem in cases.items():
        with pytest.raises(ConfigError) as info:
            load_config(write(tmp_path, text))
        assert str(info.value).endswith(f"line 1: {problem}"), str(info.value)


def test_an_unquoted_yaml_date_is_read_as_its_iso_text(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "start: 2025-01-01\nend: 2025-01-08\n"))
    assert (config.start, config.end) == ("2025-01-01", "2025-01-08")


def test_overrides_replace_keys_and_dotted_ones_reach_inside(tmp_path: Path) -> None:
    path = write(tmp_path, MARKET + "costs: {fee_bps: 2, slippage_bps: 3}\n")
    config = load_config(path, timeframe="4h", end=None)
    assert (config.timeframe, config.end, config.costs.fee_bps) == ("4h", "2025-01-08", 2)
    config = load_yaml_model(path, BacktestConfig, overrides={"costs.fee_bps": 7})
    assert (config.costs.fee_bps, config.costs.slippage_bps) == (7, 3)
    with pytest.raises(ConfigError, match=r"'costs.fee_bps': must be >= 0 \(got -5\)"):
        load_yaml_model(path, BacktestConfig, overrides={"costs.fee_bps": -5})


class _WithSecret(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: SecretStr = Field(min_length=12)
    count: int = 1


def test_a_secret_value_is_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_yaml_model(write(tmp_path, "token: hunter2\ncount: many\n"), _WithSecret, kind="secret file")
    message = str(info.value)
    assert "hunter2" not in message
    assert "'token': must be at least 12 characters long" in message
    assert "'count': must be a whole number (got 'many')" in message


def test_a_document_validates_an_inner_part_with_paths_and_lines_into_the_file(tmp_path: Path) -> None:
    doc = read_yaml_document(write(tmp_path, "outer:\n  inner:\n    fee_bps: -3\n"), kind="test file")
    with pytest.raises(ConfigError) as info:
        doc.validate(BacktestConfig().costs.__class__, doc.data["outer"]["inner"], prefix=("outer", "inner"))
    assert str(info.value).endswith("invalid test file: line 3: 'outer.inner.fee_bps': must be >= 0 (got -3)")


# ------------------------------------------------------------------------------------------- every config type
Loader = Callable[[Path], Any]
TYPES: list[tuple[str, Loader, str, str, str, int, str]] = [
    # (kind, loader, valid text, typo line appended, key path, typo's line, close match)
    ("backtest config", load_config, MARKET, "timeframee: 1h\n", "timeframee", 5, "timeframe"),
    (
        "competition",
        load_competition,
        MARKET + "agents:\n  - agent: noop\n",
        "  - agent: sma_cross\n    parmas: {fast: 3}\n",
        "agents[1].parmas",
        8,
        "params",
    ),
    (
        "arena config",
        load_arena_config,
        MARKET + "arena: {bars_per_round: 2}\nagents:\n  - agent: noop\n",
        "  - llm: {name: b, provider: openai, model: m, temprature: 0.5}\n",
        "agents[1].llm.temprature",
        8,
        "temperature",
    ),
    ("LLM agent config", load_llm_config, LLM, "max_token: 5\n", "max_token", 4, "max_tokens"),
    ("gates file", load_gates, GATES, "max_pbbo: 0.5\n", "max_pbbo", 10, "max_pbo"),
]


@pytest.mark.parametrize(("kind", "loader", "valid", "typo", "key", "line", "close"), TYPES, ids=[t[0] for t in TYPES])
def test_every_config_type_reports_in_the_same_format(
    tmp_path: Path, kind: str, loader: Loader, valid: str, typo: str, key: str, line: int, close: str
) -> None:
    loader(write(tmp_path, valid))  # the base file is valid
    path = write(tmp_path, valid + typo)
    with pytest.raises(ConfigError) as info:
        loader(path)
    assert str(info.value) == f"{path}: invalid {kind}: line {line}: unknown key {key!r} (did you mean {close!r}?)"
    syntax = write(tmp_path, valid + "oops: [\n", "syntax.yaml")
    with pytest.raises(ConfigError, match=rf"^{syntax}: invalid YAML in {kind} at line \d+, column \d+: "):
        loader(syntax)
    with pytest.raises(FileNotFoundError, match=rf"^{tmp_path / 'none.yaml'}: {kind} not found$"):
        loader(tmp_path / "none.yaml")


def test_arena_entries_are_checked_with_their_paths(tmp_path: Path) -> None:
    text = MARKET + "agents:\n  - agent: noop\n  - llm: 5\n  - serve: local\n  - agent: noop\n    llm: x.yaml\n"
    with pytest.raises(ConfigError) as info:
        load_arena_config(write(tmp_path, text))
    assert [str(p) for p in info.value.problems] == [
        "line 7: 'agents[1].llm': must be text or a mapping of keys to values (got 5)",
        "line 8: 'agents[2]': needs 'agent:' (a quant agent) or 'llm:' (a language model)",
        "line 9: 'agents[3]': has both 'agent:' and 'llm:'; give one per entry",
    ]
    with pytest.raises(ConfigError, match=r"'agents\[0\].llm': no such LLM agent config .*missing.yaml"):
        load_arena_config(write(tmp_path, MARKET + "agents:\n  - llm: missing.yaml\n"))
    with pytest.raises(ConfigError, match=r"'agents': agent names must be unique; repeated: \['noop'\]"):
        load_arena_config(write(tmp_path, MARKET + "agents:\n  - agent: noop\n  - agent: noop\n"))
    with pytest.raises(ConfigError, match="an arena needs at least one entry under 'agents:'"):
        load_arena_config(write(tmp_path, MARKET))


def test_a_competition_agent_must_look_like_a_name_or_a_class_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 6: 'agents\[0\].agent': must be a registry name like sma_cross"):
        load_competition(write(tmp_path, MARKET + "agents:\n  - agent: not a name\n"))
    with pytest.raises(ConfigError, match="a competition needs at least one entry under 'agents:'"):
        load_competition(write(tmp_path, MARKET + "agents: []\n"))
