"""The wire's JSON (orjson where it agrees with the stdlib) reads and writes as the stdlib."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest
import uvloop
from hypothesis import given
from hypothesis import strategies as st

from pns_sio import jsoncodec
from pns_sio.cli import loop_factory

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False)
    | st.text()
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    # repr tells 1 from 1.0 and -0.0 from 0.0, which == does not.
    return repr(a) == repr(b) or (
        isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    )


def non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(non_finite(v) for v in value.values())
    return False


@given(values)
def test_what_the_stdlib_writes_reads_back_the_same(value: Any) -> None:
    text = json.dumps(value)
    assert same(jsoncodec.loads(text), json.loads(text))
    assert same(jsoncodec.loads(text.encode()), json.loads(text))


@given(values)
def test_what_it_writes_the_stdlib_reads_as_the_value(value: Any) -> None:
    text = jsoncodec.dumps(value, separators=(",", ":"))
    if non_finite(value):
        # Infinity is not JSON, and a browser's JSON.parse refuses it: written as
        # null, as JSON.stringify writes it (no notification can hold one: PNS refuses them).
        json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} written"))
    else:
        assert same(json.loads(text), value)


def test_the_odd_inputs_a_client_may_send_read_as_the_stdlib_reads_them() -> None:
    for text in (
        "[18446744073709551616]",
        "[-9223372036854775809]",
        '{"limit": 123456789012345678901234567890}',
        "[NaN, Infinity, -Infinity]",
        '"\\ud800"',
        "[1e400]",
        '{"a": 1, "a": 2}',
    ):
        assert same(jsoncodec.loads(text), json.loads(text)), text
    assert jsoncodec.dumps({1: "int key"}) == json.dumps({1: "int key"})
    assert json.loads(jsoncodec.dumps([2**70])) == [2**70]
    assert jsoncodec.dumps([math.inf, -math.inf, math.nan]) == "[null,null,null]"
    # The same where orjson cannot write the rest (past 64 bits) and the stdlib does.
    assert json.loads(jsoncodec.dumps([2**70, math.inf])) == [2**70, None]


def test_the_node_runs_on_uvloop_unless_told_otherwise() -> None:
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None
    with asyncio.Runner(loop_factory=loop_factory("auto")) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)


def strict_stdlib(text: str | bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(name)

    return json.loads(text, parse_constant=refuse)


@given(values | st.text(max_size=30))
def test_http_bodies_read_as_the_strict_stdlib_reads_them(value: Any) -> None:
    # Values as JSON, and arbitrary text: both readers agree, or both refuse.
    texts = [json.dumps(value), *([value] if isinstance(value, str) else [])]
    for text in texts:
        try:
            expected = strict_stdlib(text)
        except ValueError:
            with pytest.raises(ValueError):
                jsoncodec.loads_strict(text)
            continue
        assert same(jsoncodec.loads_strict(text), expected)
        assert same(jsoncodec.loads_strict(text.encode()), expected)


def test_http_bodies_refuse_what_is_not_json() -> None:
    for text in ("[NaN]", '{"a": Infinity}', "-Infinity", "", "{", "[1,]"):
        with pytest.raises(ValueError):
            jsoncodec.loads_strict(text)
        with pytest.raises(ValueError):
            jsoncodec.loads_strict(text.encode())
    assert jsoncodec.loads_strict("[18446744073709551616]") == [2**64]


@pytest.mark.parametrize("loads", [jsoncodec.loads, jsoncodec.loads_strict])
@pytest.mark.parametrize("inner", ["", "1234567890123456789"], ids=["orjson", "stdlib"])
def test_the_depth_bound_holds_for_the_shortest_texts_that_reach_it(loads, inner) -> None:
    # Texts too short to nest past the bound skip the walk: the shortest that do
    # nest past it are still refused, as text and as bytes.
    limit = jsoncodec.MAX_DEPTH
    deepest = "[" * limit + inner + "]" * limit
    assert loads(deepest) is not None
    too_deep = "[" * (limit + 1) + inner + "]" * (limit + 1)
    for text in (too_deep, too_deep.encode()):
        with pytest.raises(jsoncodec.MalformedJSON):
            loads(text)


@pytest.mark.parametrize("loads", [jsoncodec.loads, jsoncodec.loads_strict])
def test_long_texts_are_walked_only_when_their_brackets_could_nest_past_the_bound(loads) -> None:
    limit = jsoncodec.MAX_DEPTH
    padding = "x" * 1000
    # Long, few brackets: read without the walk.
    assert loads(f'{{"a": "{padding}", "b": [1, {{"c": 2}}]}}') == {
        "a": padding,
        "b": [1, {"c": 2}],
    }
    # Many brackets, shallow (side by side, or inside a string): walked, and read.
    wide = "[" + ",".join(["{}"] * (2 * limit)) + "]"
    assert loads(wide) == [{}] * (2 * limit)
    in_string = '{"a": "' + "[" * (2 * limit) + '"}'
    assert loads(in_string) == {"a": "[" * (2 * limit)}
    # Deep and long: refused, as text and as bytes.
    deep = '{"pad": "' + padding + '", "v": ' + "[" * (limit + 1) + "]" * (limit + 1) + "}"
    for text in (deep, deep.encode()):
        with pytest.raises(jsoncodec.MalformedJSON):
            loads(text)
