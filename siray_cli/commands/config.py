"""`siray config`: read and change the settings of a profile in the config file."""

from typing import Annotated

import typer

from siray_cli.candidates import complete_setting
from siray_cli.commands._context import get_context
from siray_cli.commands._options import JsonOpt
from siray_cli.settings import KEYS, check_value, known_key, mask, stored_value

app = typer.Typer(help="Read and change settings (config file, profiles).", no_args_is_help=True)

ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile", help="The profile to change (default: the one in effect).", show_default=False
    ),
]
ReadProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        help="Read as this profile would be in effect (default: the one in effect).",
        show_default=False,
    ),
]
KeyArg = Annotated[
    str,
    typer.Argument(
        help=f"One of: {', '.join(KEYS)}.", metavar="KEY", autocompletion=complete_setting
    ),
]


@app.command("list")
def list_(ctx: typer.Context, profile: ReadProfileOpt = None, json_mode: JsonOpt = False) -> None:
    """Every setting in effect, with where it came from (the key masked)."""
    state = get_context(ctx, json_mode)
    settings = state.session.settings.for_profile(profile)
    rows = {}
    for name, key in KEYS.items():
        setting = settings.get(name)
        shown = mask(setting.value) if key.secret and setting.value else setting.value
        rows[name] = {"value": shown, "source": setting.source}
    if json_mode:
        state.output.emit_json(rows)
        return
    state.output.data_lines(
        f"{name}\t{row['value'] if row['value'] is not None else ''}\t{row['source']}"
        for name, row in rows.items()
    )


@app.command()
def get(ctx: typer.Context, name: KeyArg, profile: ReadProfileOpt = None) -> None:
    """Print one setting's value in effect (the key masked).

    `siray auth token` prints the key itself.
    """
    state = get_context(ctx)
    known_key(name)
    value = state.session.settings.for_profile(profile).value(name)
    if value is not None:
        state.output.data(mask(value) if KEYS[name].secret else value)


@app.command("set", context_settings={"ignore_unknown_options": True})  # `timeout -5` is a value
def set_(
    ctx: typer.Context,
    name: KeyArg,
    value: Annotated[str, typer.Argument(help="The new value.")],
    profile: ProfileOpt = None,
) -> None:
    """Store a setting in a profile, checked by the rule of its flag."""
    state = get_context(ctx)
    checked = check_value(name, value)
    stored = stored_value(name, checked)
    target = profile or state.session.settings.profile_name
    state.session.settings.config.update(target, name, stored)
    shown = mask(checked) if KEYS[name].secret else checked
    state.output.info(
        f"{name} = {shown} in profile {target} ({state.session.settings.config.path})"
    )


@app.command()
def unset(ctx: typer.Context, name: KeyArg, profile: ProfileOpt = None) -> None:
    """Remove a setting from a profile."""
    state = get_context(ctx)
    known_key(name)
    target = profile or state.session.settings.profile_name
    config = state.session.settings.config
    if name not in config.profile(target):
        state.output.info(f"{name} was not set in profile {target} ({config.path})")
        return
    config.update(target, name, None)
    state.output.info(f"removed {name} from profile {target} ({config.path})")


@app.command()
def path(ctx: typer.Context) -> None:
    """Print the config file's path."""
    state = get_context(ctx)
    state.output.data(str(state.session.settings.config.path))
