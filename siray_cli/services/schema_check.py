"""A quick yes for the common case: a request body that a model's JSON Schema certainly accepts,
told by fastjsonschema: the schema compiled once into Python code, about 3 µs a body, 10 ms to
import and compile, where jsonschema takes a tenth of a second to import (it is imported only to
word what is wrong). It replaces a check of our own of the same keywords, which took 25 µs a body
(a quarter of a second of a 10,000-line batch's planning).

jsonschema checks bodies here under Draft 2020-12; fastjsonschema implements draft-07, and ignores
a keyword it does not know where jsonschema would apply it. So only schemas made of the keywords
below, on which the two drafts agree, are compiled; `enum` and `const` only of plain values
(Python's `[True] == [1]`, which jsonschema does not take for equal, is fastjsonschema's
comparison of lists). Only a yes is final: a schema of any other shape, or a body fastjsonschema
refuses, goes to jsonschema, which finds and words every problem (services/validation.py). So a
disagreement can only cost time, as long as a yes is never said to a body jsonschema refuses
(tests/test_inputs.py checks it against jsonschema).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

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
PLAIN = (str, int, float, bool, type(None))

T = TypeVar("T")
KEPT = 32  # schemas whose compiled check is kept (a batch names a handful of models)
_checks: dict[int, tuple[object, Callable[[Any], Any] | None]] = {}


def kept(cache: dict[int, tuple[object, T]], schema: object, make: Callable[[], T]) -> T:
    """What `make` makes of `schema`, made once per schema object: a batch checks each line
    against the schema its model's catalogue entry holds (one object per model, unchanged for the
    whole command). Kept by the schema's identity: the cache holds the schema too, so no other
    object takes its id while it is there."""
    found = cache.get(id(schema))
    if found is not None and found[0] is schema:
        return found[1]
    if len(cache) >= KEPT:
        cache.clear()
    made = make()
    cache[id(schema)] = (schema, made)
    return made


def certainly_valid(schema: object, body: object) -> bool:
    """True only when `body` is valid under `schema` as jsonschema's Draft202012Validator says;
    False when it is not, or this cannot tell."""
    check = kept(_checks, schema, lambda: _compiled(schema))
    if check is None:
        return False
    try:
        check(body)
    except Exception:  # refused (JsonSchemaValueException), or a check that could not run
        return False
    return True


def _compiled(schema: object) -> Callable[[Any], Any] | None:
    """fastjsonschema's check of a schema of the common keywords only, else None (kept as such:
    a schema nested too deep to walk, or a keyword's value fastjsonschema cannot take, is
    jsonschema's to judge, whose own errors validation.py catches)."""
    try:
        skeleton = _skeleton(schema)
        if skeleton is None:
            return None
        import fastjsonschema

        return fastjsonschema.compile(
            skeleton,
            use_default=False,  # it would write the defaults into the body it checks
            use_formats=False,  # as jsonschema: a format is an annotation
        )  # detailed_exceptions=False fails to compile any `const` (fastjsonschema 2.22.3)
    except Exception:  # RecursionError included
        return None


def _skeleton(schema: object) -> dict[str, Any] | bool | None:
    """The schema's assertions alone (a new object), when it is made only of keywords whose
    meaning draft-07 and 2020-12 share; else None. Its annotations assert nothing, and are left
    out of what fastjsonschema reads: it follows a "$ref" wherever one is, an annotation's value
    included, fetching any URL it names (and rewrites it in place)."""
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, dict):
        return None
    if any(key not in ASSERTIONS and key not in ANNOTATIONS for key in schema):
        return None
    assertions = {key: value for key, value in schema.items() if key in ASSERTIONS}
    for word in ("enum", "const"):
        if word in assertions:
            values = assertions[word] if word == "enum" else [assertions[word]]
            if not isinstance(values, list) or not all(isinstance(v, PLAIN) for v in values):
                return None
    if "properties" in assertions:
        if not isinstance(assertions["properties"], dict):
            return None
        properties = {name: _skeleton(value) for name, value in assertions["properties"].items()}
        if any(value is None for value in properties.values()):
            return None
        assertions["properties"] = properties
    # `items` as a list is draft-07's tuple of schemas and 2020-12's error (prefixItems)
    for word in ("items", "additionalProperties"):
        if word in assertions:
            assertions[word] = _skeleton(assertions[word])
            if assertions[word] is None:
                return None
    required = assertions.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        return None
    return assertions
