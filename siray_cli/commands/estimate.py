"""`siray estimate`: the price of a request, or of a batch, without submitting anything."""

from typing import TYPE_CHECKING, Annotated

import typer

from siray_cli.commands._context import get_context, transfers_for
from siray_cli.commands._options import (
    BatchModelOpt,
    ImageOpt,
    InputJsonOpt,
    InputOpt,
    JsonOpt,
    ModelArg,
    NoValidateOpt,
    PromptArg,
    PromptFileOpt,
    PromptOpt,
)
from siray_cli.errors import UsageError
from siray_cli.settings_keys import MODEL

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext


def estimate(
    ctx: typer.Context,
    model: ModelArg = None,
    prompt: PromptArg = None,
    prompt_opt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    input_items: InputOpt = None,
    input_json: InputJsonOpt = None,
    image: ImageOpt = None,
    no_validate: NoValidateOpt = False,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help="The price of a batch file (as `run --batch` takes it; '-' for stdin), by "
            "model: what running it now would send (lines that follow an earlier task cost "
            "nothing). On a pipe, no header: model, provider, lines, sent and the prices, "
            "tab-separated, then a total line.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    model_opt: BatchModelOpt = None,
    json_mode: JsonOpt = False,
) -> None:
    """Print what a request would cost, without submitting it.

    The price is in credits and USD. Only providers with a price endpoint (Higgsfield) can tell;
    for others, exit 2.
    """
    from siray_cli.services.requests import RequestSpec, build_request

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    if batch is not None:
        if model or prompt or prompt_opt or prompt_file or input_items or input_json or image:
            raise UsageError(
                "--batch takes every job from its file",
                hint="give the default model with --model, and inputs on each line",
            )
        _estimate_batch(context, batch, model_opt, not no_validate)
        return
    model, prompt = session.model_and_prompt(model, prompt, "estimate")
    spec = RequestSpec(
        command="estimate",
        model=model,
        prompt=prompt,
        prompt_opt=prompt_opt,
        prompt_file=prompt_file,
        input_items=input_items or [],
        input_json=input_json,
        image=image,
        validate=not no_validate,
    )
    with session.provider() as provider:
        if not provider.capabilities.supports_estimate:
            provider.estimate({})  # says why, as a usage error
        request = build_request(session, provider, spec, transfers_for(output))
        price = provider.estimate(request.body)
    if output.json_mode:  # numbers for scripts (`jq '.usd * 100'`); the text as given for people
        output.result({"model": model, **{name: float(value) for name, value in price.items()}})
    else:
        output.data_lines(f"{name}\t{value}" for name, value in price.items())


def _estimate_batch(context: "AppContext", source: str, model: str | None, validate: bool) -> None:
    """A batch's price by model, then its total: each line checked as a run checks it, and
    nothing uploaded, submitted or recorded."""
    from siray_cli.services.batch import BatchOptions
    from siray_cli.services.budget import estimate_batch

    session, output = context.session, context.output
    timeout, poll_interval = session.wait_options(None, None)
    options = BatchOptions(
        source=source,
        default_model=session.settings.read(MODEL, model),
        concurrency=1,
        directory=None,
        force=False,
        timeout=timeout,
        poll_interval=poll_interval,
        resume=False,
        validate=validate,
        inline=False,
    )
    with session.providers() as providers:
        prices = estimate_batch(session, providers, options)
    totals: dict[str, float] = {}
    for entry in prices:
        for unit, amount in (entry.totals or {}).items():
            totals[unit] = totals.get(unit, 0.0) + float(amount)
    if output.json_mode:
        output.result(
            {
                "models": [
                    {
                        "provider": e.provider,
                        "model": e.model,
                        "lines": e.lines,
                        "sent": e.sent,
                        **{unit: float(v) for unit, v in (e.totals or {}).items()},
                    }
                    for e in prices
                ],
                "total": totals,
            }
        )
        return
    units = sorted({unit for e in prices for unit in (e.totals or {})})
    rows = [
        [e.model, e.provider, str(e.lines), str(e.sent)]
        + [str((e.totals or {}).get(unit, 0)) for unit in units]
        for e in prices
    ]
    rows.append(
        ["total", "", str(sum(e.lines for e in prices)), str(sum(e.sent for e in prices))]
        + [f"{totals.get(unit, 0):g}" for unit in units]
    )
    output.table(rows, ["model", "provider", "lines", "sent", *units])
