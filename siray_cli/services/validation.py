"""Model inputs checked against the catalogue's JSON Schema before a paid request is sent.

`-i key=value` text is coerced by the schema's type, then jsonschema validates the whole body, and
its findings are rewritten as sentences a person would write. jsonschema is imported only here,
and only for a body that services/schema_check.py cannot tell is valid.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Sequence
from shlex import quote
from typing import Any

from siray_cli.domain import ModelInfo
from siray_cli.errors import UsageError
from siray_cli.services.values import (
    InputItem,
    JSONTooLarge,
    decode_value,
    is_remote,
    load_json,
)

TRUE = {"true", "1", "yes", "y", "on"}
FALSE = {"false", "0", "no", "n", "off"}
IGNORED_KEYS = {"model"}


def _type(prop: dict[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind is None and "enum" in prop and prop["enum"]:
        sample = prop["enum"][0]
        kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(sample))
    return kind if isinstance(kind, str) else None


def is_image_field(name: str, prop: dict[str, Any]) -> bool:
    """Fields whose name says image or mask, holding a string or an array of strings."""
    if "image" not in name.lower() and "mask" not in name.lower():
        return False
    kind = _type(prop)
    if kind == "array":
        items = prop.get("items")
        return isinstance(items, dict) and _type(items) in (None, "string")
    return kind in (None, "string")


def _scalar(key: str, raw: str, prop: dict[str, Any]) -> Any:
    kind = _type(prop)
    if kind == "string" or (kind is None and not prop):
        return raw
    if kind == "integer":
        try:
            return int(raw.strip())
        except ValueError:
            raise ValueError(f"{key}: {json.dumps(raw)} is not an integer") from None
    if kind == "number":
        try:
            number = float(raw.strip())
        except ValueError:
            raise ValueError(f"{key}: {json.dumps(raw)} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{key}: {json.dumps(raw)} is not a finite number")
        return (
            int(number)
            if number.is_integer() and "." not in raw and "e" not in raw.lower()
            else number
        )
    if kind == "boolean":
        word = raw.strip().lower()
        if word in TRUE:
            return True
        if word in FALSE:
            return False
        raise ValueError(f"{key}: {json.dumps(raw)} is not a boolean (true/false, yes/no, 1/0)")
    return decode_value(raw)


def coerce_inputs(
    items: Sequence[InputItem],
    info: ModelInfo,
    local_file: Callable[[str, str], str] | None = None,
) -> dict[str, Any]:
    """`-i` inputs typed by the schema: strings stay as typed, numbers and booleans are parsed,
    repeated keys (or a JSON list) make an array, and image fields may name a local file."""
    body, problems = coerce_each(items, info, local_file)
    if problems:
        raise UsageError(f"invalid inputs for {info.name}: " + "; ".join(problems.values()))
    return body


def coerce_each(
    items: Sequence[InputItem],
    info: ModelInfo,
    local_file: Callable[[str, str], str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """As coerce_inputs, but every input is tried: (the body of those that could be typed, a
    problem for each that could not, by key), so all of them are reported at once."""
    properties = info.properties
    grouped: dict[str, list[InputItem]] = {}
    for item in items:
        grouped.setdefault(item.key, []).append(item)
    body: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for key, group in grouped.items():
        prop = properties.get(key)
        try:
            if prop is None:
                body[key] = group[-1].value()
            elif _type(prop) == "array":
                body[key] = _array(key, group, prop)
            elif group[-1].forced_json or group[-1].literal:
                body[key] = group[-1].value()
            else:
                body[key] = _scalar(key, group[-1].raw, prop)
            literal = any(item.literal for item in group)
            if prop is not None and local_file and is_image_field(key, prop) and not literal:
                body[key] = _local_files(key, body[key], local_file)
        except ValueError as exc:
            problems[key] = str(exc)
    return body, problems


def _array(key: str, group: list[InputItem], prop: dict[str, Any]) -> list[Any]:
    items_schema = prop.get("items") if isinstance(prop.get("items"), dict) else {}
    values: list[Any] = []
    for item in group:
        text = item.raw.strip()
        if item.literal:
            values.append(item.raw)
        elif item.forced_json or text.startswith("["):
            try:
                decoded = load_json(item.raw)
            except JSONTooLarge as exc:
                raise ValueError(f"{key}: {exc}") from None
            except ValueError:
                raise ValueError(f"{key}: {json.dumps(item.raw)} is not a JSON list") from None
            values.extend(decoded if isinstance(decoded, list) else [decoded])
        else:
            values.append(_scalar(key, item.raw, items_schema or {"type": "string"}))
    return values


def local_files_in(
    body: dict[str, Any], info: ModelInfo, local_file: Callable[[str, str], str]
) -> dict[str, Any]:
    """Typed values (a JSON body, a JSON Lines job) whose image fields name local files: each
    such path handed to `local_file`, as `-i` values are."""
    properties = info.properties
    return {
        key: _local_files(key, value, local_file)
        if key in properties and is_image_field(key, properties[key])
        else value
        for key, value in body.items()
    }


def _local_files(key: str, value: Any, local_file: Callable[[str, str], str]) -> Any:
    if isinstance(value, list):
        return [_local_files(key, v, local_file) for v in value]
    if isinstance(value, str) and value and not is_remote(value):
        return local_file(key, value)
    return value


def apply_defaults(body: dict[str, Any], info: ModelInfo) -> None:
    """A required input the schema gives a default for may be omitted: send the default."""
    for name in info.required:
        default = info.properties.get(name, {}).get("default")
        if name not in body and default is not None:
            body[name] = default


def _choices(name: str, info: ModelInfo) -> list[str]:
    enum = info.properties.get(name, {}).get("enum")
    return [str(choice) for choice in enum] if isinstance(enum, list) else []


def _with_choices(name: str, info: ModelInfo) -> str:
    """`size (one of 1024x768, 768x1024)`: a missing input with the values it may take."""
    choices = _choices(name, info)
    return f"{name} (one of {', '.join(choices)})" if choices else name


def _example(name: str, info: ModelInfo) -> str:
    choices = _choices(name, info)
    return quote(choices[0]) if choices else "..."


def _suggest(value: object, choices: Sequence[object]) -> str:
    text = str(value)
    names = [str(choice) for choice in choices]
    folded = [n for n in names if n.lower() == text.lower()]
    close = folded or difflib.get_close_matches(text, names, n=1, cutoff=0.6)
    return f"; did you mean {json.dumps(close[0])}?" if close else ""


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "body"
    value, rule, limit = error.instance, error.validator, error.validator_value
    shown = json.dumps(value, ensure_ascii=False)
    if rule == "enum":
        allowed = ", ".join(str(v) for v in limit)
        return f"{where}: {shown} is not one of {allowed}{_suggest(value, limit)}"
    if rule == "const":
        return f"{where}: {shown} must be {json.dumps(limit)}"
    if rule == "type":
        wanted = limit if isinstance(limit, str) else " or ".join(limit)
        article = "an" if wanted[:1] in "aeiou" else "a"
        return f"{where}: {shown} is not {article} {wanted}"
    if rule in ("minimum", "exclusiveMinimum"):
        return f"{where}: {shown} is below the minimum {limit}"
    if rule in ("maximum", "exclusiveMaximum"):
        return f"{where}: {shown} is above the maximum {limit}"
    if rule == "minItems":
        return f"{where}: {len(value)} item(s) given, at least {limit} needed"
    if rule == "maxItems":
        return f"{where}: {len(value)} items given, at most {limit} allowed"
    if rule == "minLength":
        return (
            f"{where}: must not be empty" if limit == 1 else f"{where}: at least {limit} characters"
        )
    if rule == "maxLength":
        return f"{where}: at most {limit} characters"
    return f"{where}: {error.message}"


_validators: dict[int, tuple[object, Any]] = {}  # id(schema) -> (schema, validator)


def schema_validator(schema: dict[str, Any]) -> Any:
    """The validator of a model's schema, made once per schema (schema_check.kept): jsonschema
    reads the whole schema each time a validator is made."""
    from jsonschema import Draft202012Validator

    from siray_cli.services.schema_check import kept

    return kept(_validators, schema, lambda: Draft202012Validator(schema))


def validate_body(
    body: dict[str, Any],
    info: ModelInfo,
    earlier: dict[str, str] | None = None,
    *,
    command: str = "siray",
) -> None:
    """Raise one usage error naming every problem: values that could not be typed (`earlier`,
    by key), missing inputs all at once, unknown inputs with the valid ones, then each value that
    breaks the schema. `command` is how the hint spells siray (with --provider, see
    providers.command_prefix)."""
    from siray_cli.services.schema_check import certainly_valid

    earlier = earlier or {}
    problems: list[str] = list(earlier.values())
    missing = [name for name in info.required if name not in body and name not in earlier]
    if missing:
        problems.append(
            f"missing required input{'s' if len(missing) > 1 else ''}: "
            + ", ".join(_with_choices(name, info) for name in missing)
        )
    known = set(info.properties)
    unknown = [k for k in [*body, *earlier] if k not in known and k not in IGNORED_KEYS]
    if unknown and known and info.schema.get("additionalProperties") is not True:
        hints = "".join(_suggest(k, sorted(known)) for k in unknown[:1])
        problems.append(
            f"unknown input{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)} "
            f"(valid: {', '.join(sorted(known))}){hints}"
        )
    if not problems and certainly_valid(info.schema, body):
        return  # jsonschema (imported only to find and word what is wrong) would find nothing
    try:
        errors = sorted(
            schema_validator(info.schema).iter_errors(body),
            key=lambda e: list(e.absolute_path),
        )
    except Exception:  # a schema the catalogue got wrong must not block the request
        errors = []
    problems.extend(
        _describe(error)
        for error in errors
        if error.validator not in ("required", "additionalProperties")
    )
    if problems:
        example = " ".join(
            f"-i {name}={_example(name, info)}" for name in missing if name != "prompt"
        )
        raise UsageError(
            f"invalid inputs for {info.name}: " + "; ".join(problems),
            hint=f"see `{command} models show {info.name}`"
            + (f"; for example: {example}" if example else "")
            + "; --no-validate sends the request as it is",
        )
