"""`siray auth`: log in once, see which key is in effect and where it came from, log out."""

import os
import sys
from typing import Annotated

import click
import typer

from siray_cli.commands._context import AppContext, get_context
from siray_cli.commands._options import JsonOpt
from siray_cli.errors import (
    AuthenticationError,
    ExitCode,
    UsageError,
)
from siray_cli.settings import header_safe, mask

app = typer.Typer(help="Log in, show the key in effect, log out.", no_args_is_help=True)

ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile", help="The profile to change (default: the one in effect).", show_default=False
    ),
]


def key_works(state: AppContext, key: str) -> bool:
    """True when the API accepts the key, False when it refuses it (401, 403)."""
    with state.session.provider(api_key=key) as provider:
        return provider.verify_credentials()


def _read_key(with_token: bool, what: str) -> str:
    if with_token:
        key = sys.stdin.read()
    elif sys.stdin.isatty():
        key = click.prompt(what, hide_input=True, err=True)
    else:
        raise UsageError(
            "standard input is not a terminal, so siray will not prompt for the key",
            hint='pipe it in instead: printf %s "$SIRAY_KEY" | siray auth login --with-token',
        )
    key = key.strip()
    if not header_safe(key):
        raise UsageError(
            "that is not an API key (empty, or with spaces, control characters or non-ASCII "
            "characters inside)"
        )
    return key


@app.command()
def login(
    ctx: typer.Context,
    profile: ProfileOpt = None,
    with_token: Annotated[
        bool, typer.Option("--with-token", help="Read the key from standard input.")
    ] = False,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Save the key without checking it.")
    ] = False,
) -> None:
    """Save an API key to a profile, after checking it against the API.

    Prompts with hidden input on a terminal; never prompts otherwise.
    """
    state = get_context(ctx)
    output = state.output
    settings = state.session.settings
    name = profile or settings.profile_name
    credential = settings.spec.credential
    key = _read_key(with_token, credential.prompt)
    output.add_secret(key)
    # of the provider's form, or refused here (--no-verify too): never sent, never saved
    key = settings.check_credential(
        key,
        "standard input" if with_token else "the prompt",
        hint=f"nothing was sent or saved; give the {credential.prompt}, as issued",
    )
    if not no_verify and not key_works(state, key):
        raise AuthenticationError(
            f"the API at {state.session.settings.base_url.value} rejected this key; "
            "nothing was saved",
            hint="check the key, or save it anyway with --no-verify",
        )
    settings.config.update(name, credential.stored_as, key)
    output.info(f"saved key {mask(key)} to profile {name} in {settings.config.path}")
    if os.environ.get(credential.env):
        output.warn(f"{credential.env} is set, and takes precedence over the saved key")


@app.command()
def status(
    ctx: typer.Context,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not check the key against the API.")
    ] = False,
    json_mode: JsonOpt = False,
) -> int:
    """Which key is in effect, where it came from, and whether it works.

    Shows the key masked, and the hosts it is for. Exits 0 when the key is usable, 3 when there
    is none or the API rejects it.
    """
    state = get_context(ctx, json_mode)
    settings, output = state.session.settings, state.output
    key = settings.api_key
    base = settings.base_url
    gateway = settings.gateway_url if settings.spec.gateway_url is not None else None
    works = None if offline or not key.value else key_works(state, key.value)
    if json_mode:
        output.emit_json(
            {
                "profile": settings.profile_name,
                "key": mask(key.value) if key.value else None,
                "key_source": key.source if key.value else None,
                "base_url": base.value,
                "gateway_url": gateway.value if gateway is not None else None,
                "key_works": works,
            }
        )
    else:
        verdict = {None: "not checked", True: "yes", False: "no (the API rejected it)"}[works]
        lines = [
            f"profile:     {settings.profile_name} (from {settings.profile_source})",
            f"key:         {mask(key.value)}" + (f" (from {key.source})" if key.value else ""),
            f"base_url:    {base.value} (from {base.source})",
        ]
        if gateway is not None:  # Higgsfield has no gateway: the line would be Siray's
            lines.append(f"gateway_url: {gateway.value} (from {gateway.source})")
        output.data_lines([*lines, f"key works:   {verdict if key.value else 'no key'}"])
    if not key.value:
        output.report(settings.missing_key())
        return ExitCode.AUTH
    return ExitCode.AUTH if works is False else ExitCode.OK


@app.command()
def logout(ctx: typer.Context, profile: ProfileOpt = None) -> None:
    """Remove the stored key from a profile (the rest of it stays)."""
    state = get_context(ctx)
    name = profile or state.session.settings.profile_name
    config = state.session.settings.config
    stored = state.session.settings.spec.credential.stored_as
    if stored not in config.profile(name):
        state.output.info(f"profile {name} holds no key; nothing to do")
        return
    config.update(name, stored, None)
    state.output.info(f"removed the key from profile {name} in {config.path}")


@app.command()
def token(ctx: typer.Context) -> None:
    """Print the key in effect, raw, for piping: $(siray auth token)."""
    state = get_context(ctx)
    state.output.secret_data(state.session.settings.require_api_key())
