"""`siray estimate`: the price of a request, without submitting it."""

import typer

from siray_cli.commands._context import get_context, transfers_for
from siray_cli.commands._options import (
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
    json_mode: JsonOpt = False,
) -> None:
    """Print what a request would cost, without submitting it.

    The price is in credits and USD. Only providers with a price endpoint (Higgsfield) can tell;
    for others, exit 2.
    """
    from siray_cli.services.requests import RequestSpec, build_request

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    model, prompt = session.model_and_prompt(model, prompt)
    spec = RequestSpec(
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
