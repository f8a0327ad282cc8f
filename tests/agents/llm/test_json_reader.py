"""The tolerant JSON reader: what it finds in prose, what it repairs (and notes), and what truncation leaves.

`test_parsing.py` takes whole answers through `parse_decisions`; these tests hold the reader to its own contract,
on which the parser's refusal policy rests: a value cut by truncation is flagged and keeps only its complete parts,
a key given twice is kept aside rather than overwritten, and nothing is read out of a string or out of prose.
"""

from __future__ import annotations

import json
import time

from arena_lib.agents.llm.json_reader import (
    JsonCandidate,
    JsonError,
    JsonObject,
    answer_sources,
    json_candidates,
    strip_reasoning,
)


def _read(text: str) -> tuple[list[JsonCandidate], list[JsonError], list[str]]:
    """The values found in `text`, the failed attempts, and the reader-level notes."""
    notes: list[str] = []
    found = list(json_candidates(text, notes))
    values = [c for c in found if isinstance(c, JsonCandidate)]
    errors = [c for c in found if isinstance(c, JsonError)]
    return values, errors, notes


# -- finding the JSON -------------------------------------------------------------------------------------------


def test_prose_with_brackets_and_strings_before_the_json() -> None:
    text = 'I looked at [the charts] and {"my": "notes with } and ] inside"}. Final: {"decisions": []}'
    values, errors, _ = _read(text)
    assert [c.value for c in values] == [{"my": "notes with } and ] inside"}, {"decisions": []}]
    assert len(errors) == 1  # "[the charts]" is not JSON
    assert errors[0].pos == text.index("the charts")


def test_brackets_inside_strings_do_not_end_the_json() -> None:
    reason = 'breakout above [70k] and {"fake": 1} }]'
    values, errors, _ = _read(json.dumps({"decisions": [{"coin": "BTC", "justification": reason}]}))
    assert errors == []
    assert [c.value for c in values] == [{"decisions": [{"coin": "BTC", "justification": reason}]}]


def test_reasoning_blocks_are_removed_and_noted() -> None:
    notes: list[str] = []
    assert strip_reasoning('<think>Maybe short? {"draft": 1}</think>\nfinal', notes) == " \nfinal"
    assert notes == ["removed 1 <think> reasoning block(s)"]


def test_an_unopened_closing_think_tag_drops_the_reasoning_before_it() -> None:
    notes: list[str] = []
    assert strip_reasoning('the draft was {"a": 1}</think>{"b": 2}', notes) == '{"b": 2}'
    assert notes == ["removed reasoning that ended with an unopened </think> tag"]


def test_an_unclosed_think_block_is_cut_off() -> None:
    notes: list[str] = []
    assert strip_reasoning('{"b": 2} <think> on second thought', notes) == '{"b": 2} '
    assert "unclosed <think>" in notes[0]


def test_fenced_blocks_come_first_then_the_whole_text_without_fences() -> None:
    sources = answer_sources('Here, {as requested}:\n```json\n{"a": 1}\n```\nMore [if] needed.')
    assert sources[0] == ("read the JSON inside a markdown code fence", '{"a": 1}\n')
    note, whole = sources[-1]
    assert note == ""
    assert "```" not in whole
    assert '{"a": 1}' in whole


# -- repairs of form, each noted --------------------------------------------------------------------------------


def test_trailing_commas_python_literals_and_single_quotes() -> None:
    text = "{'decisions': [{'coin': 'ETH', 'signal': 'hold', 'stop_loss': None, 'justification': 'flat',},],}"
    values, errors, _ = _read(text)
    assert errors == []
    assert values[0].value == {
        "decisions": [{"coin": "ETH", "signal": "hold", "stop_loss": None, "justification": "flat"}]
    }
    assert set(values[0].notes) == {
        "read single-quoted strings as JSON strings",
        "read Python literal None as JSON null",
        "removed a trailing comma",
    }


def test_comments_unquoted_keys_and_loose_numbers() -> None:
    values, _, _ = _read('{a: 1 /* c */, "b": .5 // x\n}')
    assert values[0].value == {"a": 1.0, "b": 0.5}
    assert {"quoted an unquoted object key", "read non-standard number '.5'"} <= set(values[0].notes)
    assert {"removed a /* */ comment from the JSON", "removed a // comment from the JSON"} <= set(values[0].notes)


def test_single_quotes_with_an_apostrophe_are_ambiguous() -> None:
    values, errors, _ = _read("[{'coin': 'BTC', 'signal': 'hold', 'justification': 'BTC's trend'}]")
    assert values == []
    assert errors
    assert all("ambiguous" in str(e) for e in errors)


def test_a_key_given_twice_keeps_the_first_value_and_remembers_the_second() -> None:
    values, _, _ = _read('{"a": 1, "a": 2}')
    obj = values[0].value
    assert isinstance(obj, JsonObject)
    assert obj == {"a": 1.0}
    assert obj.duplicates == [("a", 2.0)]


# -- truncation -------------------------------------------------------------------------------------------------


def test_a_cut_list_keeps_its_complete_items_and_drops_the_cut_object() -> None:
    values, _, _ = _read('[{"a": 1}, {"b": 2')
    assert len(values) == 1
    assert values[0].value == [{"a": 1.0}]
    assert values[0].truncated
    assert values[0].dropped_incomplete


def test_a_number_at_the_very_end_is_never_trusted() -> None:
    values, _, _ = _read('{"x": [1, 2, 3')  # "3" may have been "35"
    assert values[0].value == {"x": [1.0, 2.0]}
    assert values[0].truncated


def test_a_complete_value_is_not_flagged() -> None:
    values, _, _ = _read('{"x": [1, 2, 3]} and then some prose')
    assert values[0].value == {"x": [1.0, 2.0, 3.0]}
    assert not values[0].truncated
    assert not values[0].dropped_incomplete


# -- bounded cost -----------------------------------------------------------------------------------------------


def test_pathological_nesting_is_refused_and_the_search_is_bounded() -> None:
    t0 = time.perf_counter()
    values, errors, notes = _read("[" * 50_000)
    assert values == []
    assert "nested deeper than 32 levels" in str(errors[0])
    assert notes == ["stopped looking for JSON after 1000 bracket positions"]
    assert time.perf_counter() - t0 < 5.0  # ~0.1 s measured here; a runaway scan would take minutes
