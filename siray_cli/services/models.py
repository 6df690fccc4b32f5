"""The model catalogue as the `models` commands show it: the models that match, and one model's
inputs with an example command."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from siray_cli.domain import ModelInfo
from siray_cli.providers import command_prefix

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider
    from siray_cli.services.session import Session


def find_models(
    session: Session,
    provider: Provider,
    *,
    search: str | None,
    kind: str | None,
    refresh: bool = False,
) -> list[ModelInfo]:
    """The catalogue's models whose name contains `search` and whose kind is `kind`, by name."""
    from siray_cli.services.requests import catalogue

    found = catalogue(session, provider, refresh=refresh)
    return [
        m
        for name, m in sorted(found.models.items())
        if (search is None or search.lower() in name.lower())
        and (kind is None or m.kind.value == kind)
    ]


@dataclass
class ModelDescription:
    info: ModelInfo
    inputs: list[dict[str, Any]]
    example: str

    def to_json(self) -> dict[str, Any]:
        return {**self.info.to_json(), "inputs": self.inputs, "example": self.example}


def describe_model(
    session: Session, provider: Provider, name: str, *, refresh: bool = False
) -> ModelDescription:
    from siray_cli.services.requests import model_info

    info = model_info(session, provider, name, refresh=refresh)
    return ModelDescription(
        info, input_rows(info), example_command(info, command_prefix(provider.name))
    )


def _allowed(prop: dict[str, Any]) -> str:
    if isinstance(prop.get("enum"), list):
        return "one of " + ", ".join(str(v) for v in prop["enum"])
    low, high = prop.get("minimum"), prop.get("maximum")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    if prop.get("type") == "array":
        items = f"{prop.get('minItems', 0)}-{prop.get('maxItems', 'any')} items"
        return items
    return ""


def _type_name(prop: dict[str, Any]) -> str:
    kind = prop.get("type", "any")
    if kind == "array" and isinstance(prop.get("items"), dict):
        return f"array of {prop['items'].get('type', 'any')}"
    return kind if isinstance(kind, str) else "/".join(map(str, kind))


def example_command(info: ModelInfo, command: str = "siray") -> str:
    """One `siray run` line built from the model's required inputs (`command` spells siray,
    see providers.command_prefix)."""
    from siray_cli.services.validation import is_image_field

    words = [*command.split(), "run", info.name, "a lighthouse at dusk"]
    for name in info.required:
        prop = info.properties.get(name, {})
        if name == "prompt" or "default" in prop:
            continue
        if isinstance(prop.get("enum"), list) and prop["enum"]:
            value: object = prop["enum"][0]
        elif is_image_field(name, prop):
            value = "photo.png"
        elif prop.get("type") in ("integer", "number"):
            value = prop.get("minimum", 1)
        else:
            value = "..."
        words += ["-i", f"{name}={value}"]
    return shlex.join(words)


def input_rows(info: ModelInfo) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "type": _type_name(prop),
            "required": name in info.required,
            "allowed": _allowed(prop),
            "default": prop.get("default"),
            "description": prop.get("description", ""),
        }
        for name, prop in info.properties.items()
    ]
