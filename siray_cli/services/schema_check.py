"""A quick yes for the common case: a request body that a model's JSON Schema certainly accepts,
told without importing jsonschema (a tenth of a second of every `run`'s start-up).

Only schemas made of the keywords below are judged, with jsonschema's (Draft 2020-12) meaning,
and only a yes is final: a schema with any other keyword, a value this does not compare exactly
as jsonschema would, or a body that breaks a rule goes to jsonschema, which finds and words
every problem (services/validation.py). So a mistake here can only cost time, as long as a yes
is never said to a body jsonschema refuses (tests/test_inputs.py checks it against jsonschema).
"""

from __future__ import annotations

import math
from typing import Any

# keywords that assert nothing (format is an annotation unless a format checker is given)
ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly",
     "$comment", "format"}
)  # fmt: skip
ASSERTIONS = frozenset(
    {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
     "minLength", "maxLength", "minItems", "maxItems", "items", "properties", "required",
     "additionalProperties"}
)  # fmt: skip
SCALARS = (str, int, float, bool, type(None))
BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def certainly_valid(schema: object, body: object) -> bool:
    """True only when `body` is valid under `schema` as jsonschema's Draft202012Validator says;
    False when it is not, or this cannot tell."""
    try:
        return _valid(schema, body)
    except Exception:  # a schema of an odd shape: jsonschema judges it
        return False


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _has_type(value: object, kind: object) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return _is_number(value) and not (isinstance(value, float) and math.isnan(value))
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(kind)  # a type this does not know: jsonschema's call


def _same(value: object, allowed: object) -> bool:
    """Equal, and of the same scalar type: stricter than jsonschema (1 and 1.0), never looser."""
    return isinstance(value, SCALARS) and type(value) is type(allowed) and value == allowed


def _valid(schema: object, value: object) -> bool:
    if not isinstance(schema, dict):
        return False
    if any(key not in ASSERTIONS and key not in ANNOTATIONS for key in schema):
        return False
    kind = schema.get("type")
    if kind is not None:
        kinds = kind if isinstance(kind, list) else [kind]
        if not any(_has_type(value, k) for k in kinds):
            return False
    if "enum" in schema and not any(_same(value, a) for a in schema["enum"]):
        return False
    if "const" in schema and not _same(value, schema["const"]):
        return False
    if _is_number(value) and not _within(value, schema):
        return False
    if isinstance(value, str) and not _sized(len(value), schema, "Length"):
        return False
    if isinstance(value, list):
        if not _sized(len(value), schema, "Items"):
            return False
        if "items" in schema and not all(_valid(schema["items"], item) for item in value):
            return False
    if isinstance(value, dict):
        return _valid_object(schema, value)
    return True


def _within(number: Any, schema: dict[str, Any]) -> bool:
    limits = {k: schema[k] for k in BOUNDS if k in schema}
    if not all(_is_number(limit) for limit in limits.values()):
        return False
    return (
        number >= limits.get("minimum", number)
        and number <= limits.get("maximum", number)
        and ("exclusiveMinimum" not in limits or number > limits["exclusiveMinimum"])
        and ("exclusiveMaximum" not in limits or number < limits["exclusiveMaximum"])
    )


def _sized(size: int, schema: dict[str, Any], what: str) -> bool:
    low, high = schema.get(f"min{what}"), schema.get(f"max{what}")
    if low is not None and not (_is_number(low) and size >= low):
        return False
    return high is None or (_is_number(high) and size <= high)


def _valid_object(schema: dict[str, Any], value: dict[Any, Any]) -> bool:
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    extra = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        return False
    if any(name not in value for name in required):
        return False
    for key, item in value.items():
        if key in properties:
            if not _valid(properties[key], item):
                return False
        elif extra is not True:  # False refuses it; a schema for the rest: jsonschema's call
            return False
    return True
