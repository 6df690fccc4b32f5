"""What completion offers, read from local files only (never the network), in milliseconds, and
never failing (an error offers nothing): model names (the cached catalogue, or the provider's
own list), a model's inputs and their allowed values, task ids (the history), settings.

Every candidate is data a shell is sent as data (completion.py): a name from a server may hold
anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from siray_cli.providers import ProviderSpec
    from siray_cli.settings import Settings


def _settings(ctx: click.Context | None) -> Settings:
    """The settings the command line names (--provider, --profile), read as the command would:
    flags, then variables, then the profile in the config file (read only if needed)."""
    from siray_cli.settings import Settings

    root = ctx.find_root().params if ctx is not None else {}
    flags = {"provider": root.get("provider")}
    return Settings(flags, profile=root.get("profile"), warn=lambda _: None)


def _provider(ctx: click.Context | None) -> ProviderSpec:
    """The provider in effect (--provider, SIRAY_PROVIDER, the profile's), else the default
    (a name siray does not know, or a profile that does not exist, too: completing must not
    fail)."""
    from siray_cli.providers import DEFAULT_PROVIDER, REGISTRY

    try:
        name = _settings(ctx).provider
    except Exception:
        name = DEFAULT_PROVIDER
    return REGISTRY.get(name) or REGISTRY[DEFAULT_PROVIDER]


def complete_model(ctx: click.Context, incomplete: str) -> list[tuple[str, str]]:
    """Model names of the provider in effect: from the catalogue cached from its server (Siray's
    gateway), or those its package knows (Higgsfield's application ids)."""
    try:
        import json

        from siray_cli.providers import REGISTRY

        spec = _provider(ctx)
        if not spec.completes_from_cache:
            known = spec.built_in_models()
            return sorted((n, tag) for n, tag in known.items() if n.startswith(incomplete))
        # the cache keeps every host's catalogue: another provider's names are not this one's
        others = [other for other in REGISTRY.values() if other is not spec]
        elsewhere = {name for other in others for name in other.built_in_models()}
        from siray_cli.storage.private import cache_dir

        names: dict[str, str] = {}
        for path in cache_dir().glob("models-*.json"):
            for entry in json.loads(path.read_text(encoding="utf-8")).get("models", []):
                name = entry.get("name")
                wanted = isinstance(name, str) and name.startswith(incomplete)
                if wanted and name not in elsewhere:
                    names[name] = str(entry.get("tag", ""))
        return sorted(names.items())
    except Exception:
        return []


def _schema(ctx: click.Context, model: str) -> dict[str, Any]:
    """The JSON Schema of `model`'s request body: its provider's built-in one (Higgsfield's
    applications), else the one in the catalogue cached from its server."""
    import json

    spec = _provider(ctx)
    built_in = spec.built_in_schemas().get(model)
    if built_in is not None or not spec.completes_from_cache:
        return dict(built_in or {})
    from siray_cli.storage.private import cache_dir

    for path in sorted(cache_dir().glob("models-*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")).get("models", []):
            if entry.get("name") == model and isinstance(entry.get("schema"), dict):
                return dict(entry["schema"])
    return {}


def _input_help(prop: dict[str, Any], required: bool) -> str:
    """`required string: Output size in pixels.`"""
    kind = prop.get("type")
    about = " ".join(
        [*(["required"] if required else []), *([kind] if isinstance(kind, str) else [])]
    )
    text = prop.get("description")
    return ": ".join(part for part in (about, text if isinstance(text, str) else "") if part)


def _value_text(value: object, as_json: bool) -> str:
    """An allowed value as `-i key=VALUE` takes it (text, typed by the schema), or as JSON for
    `key:=VALUE`."""
    import json

    if isinstance(value, str) and not as_json:
        return value
    return json.dumps(value, ensure_ascii=False)


def complete_input(ctx: click.Context, incomplete: str) -> list[tuple[str, str]]:
    """`-i`'s candidates: the inputs of the model on the line (else of the `model` setting) as
    `name=`, and after `name=`, the values its schema allows (an enum's)."""
    try:
        # `run MODEL -i <Tab>`: Click stops parsing at the option still waiting for its value,
        # leaving the words before it unparsed in ctx.args
        typed = [word for word in ctx.args if not word.startswith("-")][:1]
        model = ctx.params.get("model") or ctx.params.get("model_opt") or "".join(typed)
        if not model:
            model = _settings(ctx).get("model").value
        if not model:
            return []
        schema = _schema(ctx, str(model))
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return []
        required = schema.get("required")
        required = required if isinstance(required, list) else []
        key, equals, _ = incomplete.partition("=")
        if not equals:
            return [
                (f"{name}=", _input_help(prop, name in required))
                for name, prop in sorted(properties.items())
                if isinstance(prop, dict)
                and name.startswith(incomplete)
                and name.strip() == name
                and not any(char.isspace() or char == "=" for char in name)
                and not name.endswith(":")
            ]
        as_json = key.endswith(":")
        prop = properties.get(key[:-1] if as_json else key)
        allowed = prop.get("enum") if isinstance(prop, dict) else None
        if not isinstance(allowed, list):
            return []
        default = prop.get("default") if isinstance(prop, dict) else None
        found = []
        for value in allowed:
            candidate = f"{key}={_value_text(value, as_json)}"
            if candidate.startswith(incomplete):
                found.append((candidate, "default" if value == default else ""))
        return found
    except Exception:
        return []


def complete_setting(incomplete: str) -> list[tuple[str, str]]:
    """The settings `siray config` knows, with what each is."""
    from siray_cli.settings import KEYS

    return [(name, key.help) for name, key in KEYS.items() if name.startswith(incomplete)]


def complete_task_id(incomplete: str) -> list[tuple[str, str]]:
    try:
        import sqlite3

        from siray_cli.storage.history import DB_NAME
        from siray_cli.storage.private import data_dir

        path = data_dir() / DB_NAME
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1) as db:
            rows = db.execute(
                "SELECT task_id, model, status FROM tasks WHERE task_id LIKE ? "
                "ORDER BY submitted_at DESC LIMIT 50",
                (incomplete.replace("%", "") + "%",),
            ).fetchall()
        return [(task_id, f"{model} {status}") for task_id, model, status in rows if task_id]
    except Exception:
        return []
