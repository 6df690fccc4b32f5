"""Parsing what users type: `key=value` inputs, and the API response parser, never crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from siray_cli.domain import TaskKind
from siray_cli.errors import ProtocolError, UsageError
from siray_cli.providers.base import parse_progress
from siray_cli.providers.siray.parse import parse_status, parse_submit
from siray_cli.services.inputs import parse_input
from siray_cli.services.values import decode_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed=42", ("seed", 42)),
        ("size=1024x768", ("size", "1024x768")),
        ("flag=true", ("flag", True)),
        ("list=[1, 2]", ("list", [1, 2])),
        ("url=https://x/?a=b&c=d", ("url", "https://x/?a=b&c=d")),
        ("neg=-5", ("neg", -5)),
        ("text=-starts-with-dash", ("text", "-starts-with-dash")),
        ("empty=", ("empty", "")),
        ("nan=NaN", ("nan", "NaN")),
        ('quoted:="42"', ("quoted", "42")),
        ("obj:={}", ("obj", {})),
        ("eq==", ("eq", "=")),
    ],
)
def test_parse_input_examples(text, expected):
    item = parse_input(text)
    assert (item.key, item.value()) == expected


@given(st.text())
def test_parse_input_never_crashes(text):
    try:
        item = parse_input(text)
    except UsageError as exc:
        assert exc.message and "\n" not in exc.message.replace(repr(text), "")
        return
    assert item.key and not any(ch.isspace() for ch in item.key)
    json.dumps(item.value())  # whatever came out can be sent


@given(
    st.text(min_size=1).filter(
        lambda k: (
            "=" not in k and ":" not in k and k.strip() == k and not any(c.isspace() for c in k)
        )
    ),
    st.text(),
)
def test_value_round_trips(key, value):
    item = parse_input(f"{key}={value}")
    parsed = item.value()
    assert item.key == key
    assert parsed == decode_value(value)
    if not isinstance(parsed, str):
        assert json.loads(value) == parsed


@pytest.mark.parametrize("extra", ["", ', "note": "' + "[{" * 40 + '"'])
def test_json_is_taken_to_the_depth_limit_and_refused_past_it(extra):
    """The nesting walk is skipped for text with few brackets: a string full of them still
    takes the walk and passes, and the limit is the same either way."""
    from siray_cli.services.values import MAX_JSON_DEPTH, JSONTooLarge, load_json

    def nested(depth: int) -> str:
        return '{"a": ' + "[" * (depth - 1) + "]" * (depth - 1) + extra + "}"

    assert load_json(nested(MAX_JSON_DEPTH))["a"]
    with pytest.raises(JSONTooLarge):
        load_json(nested(MAX_JSON_DEPTH + 1))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_status_parser_gives_a_typed_result_or_a_typed_error(payload):
    try:
        status = parse_status(payload, TaskKind.IMAGE, "image_x")
    except ProtocolError:
        return
    assert isinstance(status.status, str) and status.status
    assert status.progress is None or 0 <= status.progress <= 100
    assert all(isinstance(url, str) for url in status.urls)


@given(json_values)
def test_submit_parser_gives_a_typed_result_or_a_typed_error(payload):
    try:
        task = parse_submit(payload, TaskKind.VIDEO, "m")
    except ProtocolError:
        return
    assert task.task_id and task.task_id == task.task_id.strip()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("45%", 45),
        (45, 45),
        ("100", 100),
        (" 7 % ", 7),
        ("", None),
        (None, None),
        ("abc", None),
        (150, 100),
        (-3, 0),
        (True, None),
        (float("nan"), None),
    ],
)
def test_progress_values(value, expected):
    assert parse_progress(value) == expected


def test_both_create_shapes_and_missing_fields():
    nested = {"code": "success", "message": "", "data": {"task_id": "image_1"}}
    assert parse_submit(nested, TaskKind.IMAGE, "m").task_id == "image_1"
    assert parse_submit({"task_id": "image_2"}, TaskKind.IMAGE, "m").task_id == "image_2"
    assert parse_submit({"id": 7}, TaskKind.IMAGE, "m").task_id == "7"
    with pytest.raises(ProtocolError):
        parse_submit({"data": {}}, TaskKind.IMAGE, "m")
    status = parse_status({"data": {"status": "WEIRD_NEW_STATE"}}, TaskKind.IMAGE, "image_1")
    assert status.status == "WEIRD_NEW_STATE" and not status.is_terminal
    assert status.urls == [] and status.progress is None and status.queued_for is None
    assert parse_status({"data": {"status": "CANCELED"}}, TaskKind.IMAGE, "i").is_terminal


def test_a_number_beyond_a_float_is_not_sent_as_infinity(siray, emu):
    """Found by an adversarial pass: -i seed:=1e999999 became Infinity (no JSON can carry it),
    an internal error after the intent was journalled."""
    forced = siray("generate", "alibaba/z-image-turbo-t2i", "x", "-i", "seed:=1e999999")
    assert forced.exit_code == 2 and "is not valid JSON" in forced.stderr, forced
    typed = siray(
        "generate", "alibaba/z-image-turbo-t2i", "x", "-i", "size=1024x768",
        "-i", "note=1e999999", "--no-validate", "--json",
    )  # fmt: skip
    assert typed.exit_code == 0, typed  # not JSON-typed: sent as the text it is
    (task,) = [t for t in emu.state.tasks.values() if t.task_id == typed.json()["task_id"]]
    assert task.body["note"] == "1e999999"


# -- the quick yes before jsonschema (services/schema_check.py) ---------------------------------

small_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, 1.0, 1.5, -2.5, float("inf"), float("nan")])
    | st.sampled_from(["", "a", "ab", "abc", "1024x768", "é"])
)
bound = st.integers(-3, 3) | st.sampled_from([0.5, -1.5, 2.0])
size = st.integers(0, 3)
rules = {
    "type": st.sampled_from(["string", "integer", "number", "boolean", "null", "array",
                             "object", "strng"])
    | st.lists(st.sampled_from(["string", "integer", "null"]), min_size=1, max_size=2),
    "enum": st.lists(small_scalars, min_size=1, max_size=3),
    "const": small_scalars,
    "minimum": bound,
    "maximum": bound,
    "exclusiveMinimum": bound,
    "exclusiveMaximum": bound,
    "minLength": size,
    "maxLength": size,
    "minItems": size,
    "maxItems": size,
    "description": st.just("what it is"),
    "format": st.just("uri"),
    "pattern": st.just("^a"),  # a keyword the quick check leaves to jsonschema
}  # fmt: skip
# one or two rules a schema: more, and hardly any body would pass them all
schema_leaf = st.lists(
    st.sampled_from(sorted(rules)).flatmap(lambda k: st.tuples(st.just(k), rules[k])),
    max_size=2,
).map(dict)
schemas = st.recursive(
    schema_leaf,
    lambda children: st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["object", "array"]),
            "items": children,
            "properties": st.dictionaries(st.sampled_from("abc"), children, max_size=3),
            "required": st.lists(st.sampled_from("abcd"), max_size=2),
            "additionalProperties": st.booleans(),
        },
    ),
    max_leaves=6,
)
bodies = st.recursive(
    small_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from("abcd"), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=400, deadline=None)
@given(schemas, bodies)
@example({"type": "integer"}, 1.5)  # jsonschema's integer: an int, or a float with no fraction
@example({"enum": [1]}, True)  # and True is not 1 to it
@example({"const": 0.0}, False)
@example({"items": {"maximum": 1}}, [0, 2])
@example({"enum": [[1]]}, [True])  # lists Python takes for equal, jsonschema does not
@example({"const": {"a": 0}}, {"a": False})
@example({"properties": {"a": {"enum": [1]}}}, {"a": True})
@example({"additionalProperties": {"type": "string"}}, {"a": 1})
@example({"type": "number", "minimum": 0}, float("nan"))
def test_the_quick_yes_is_never_said_to_a_body_jsonschema_refuses(schema, body):
    from jsonschema import Draft202012Validator

    from siray_cli.services.schema_check import certainly_valid

    if certainly_valid(schema, body):
        try:
            errors = list(Draft202012Validator(schema).iter_errors(body))
        except Exception:  # jsonschema cannot judge it (an unknown type): validation passes it
            errors = []
        assert errors == [], (schema, body)


def test_the_quick_yes_takes_the_common_requests():
    """The check can fail: requests of the catalogue's shapes are told valid without jsonschema,
    and a break of each rule is not."""
    from siray_cli.emulator.catalogue import MODELS
    from siray_cli.services.schema_check import certainly_valid

    schema = MODELS["alibaba/z-image-turbo-t2i"][1]
    body = {"prompt": "a fox", "size": "1024x768", "seed": 7}
    assert certainly_valid(schema, body)
    for broken in ({"size": "1x1"}, {"seed": -2}, {"seed": "7"}, {"prompt": ""}, {"seed": True}):
        assert not certainly_valid(schema, {**body, **broken}), broken
    assert not certainly_valid(schema, {"size": "1024x768"})  # no prompt
    assert certainly_valid({**schema, "additionalProperties": False}, body)
    assert not certainly_valid({**schema, "additionalProperties": False}, {**body, "x": 1})
    assert not certainly_valid({**schema, "patternProperties": {}}, body)  # not judged here
    # a schema for the other properties is judged, and a default is not written into the body
    rest = {**schema, "additionalProperties": {"type": "integer"}}
    assert certainly_valid(rest, {**body, "x": 1}) and not certainly_valid(rest, {**body, "x": "1"})
    assert certainly_valid({"const": 1}, 1) and not certainly_valid({"const": 1}, True)
    # a server's schema too deep to walk, and one holding a "$ref" in an annotation: no error,
    # and the schema (the catalogue's, kept for the whole command) is left as it was
    deep = {**schema, "properties": {**schema["properties"], "refs": {}}}
    for _ in range(5000):
        deep["properties"]["refs"] = {"items": deep["properties"]["refs"]}
    assert not certainly_valid(deep, body)
    noted = {**schema, "default": {"$id": "http://evil.example/a/", "v": {"$ref": "b"}}}
    assert certainly_valid(noted, body) and noted["default"]["v"] == {"$ref": "b"}
    plain = {"prompt": "a fox", "size": "1024x768"}
    assert certainly_valid(schema, plain) and plain == {"prompt": "a fox", "size": "1024x768"}
    assert "default" in schema["properties"]["seed"]  # which the check did not write into it
