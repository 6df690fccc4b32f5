"""`siray generate`: submit one task and print its id."""

import typer

from siray_cli.commands._context import get_context, submit_when_admitted, transfers_for
from siray_cli.commands._options import (
    DryRunOpt,
    HoldTimeoutOpt,
    ImageOpt,
    InlineOpt,
    InputJsonOpt,
    InputOpt,
    JsonOpt,
    KindOpt,
    MaxCostOpt,
    ModelArg,
    NewOpt,
    NoValidateOpt,
    PromptArg,
    PromptFileOpt,
    PromptOpt,
    RunIdOpt,
    WebhookOpt,
)


def generate(
    ctx: typer.Context,
    model: ModelArg = None,
    prompt: PromptArg = None,
    prompt_opt: PromptOpt = None,
    prompt_file: PromptFileOpt = None,
    input_items: InputOpt = None,
    input_json: InputJsonOpt = None,
    image: ImageOpt = None,
    kind: KindOpt = None,
    no_validate: NoValidateOpt = False,
    inline: InlineOpt = False,
    webhook: WebhookOpt = None,
    new: NewOpt = False,
    run_id: RunIdOpt = None,
    dry_run: DryRunOpt = False,
    timeout: HoldTimeoutOpt = None,
    max_cost: MaxCostOpt = None,
    json_mode: JsonOpt = False,
) -> None:
    """Submit a task and print its id, without waiting for it.

    The task runs on: follow it with `siray status ID --wait`.
    """
    from siray_cli.services.budget import budget_for
    from siray_cli.services.requests import RequestSpec, build_request

    context = get_context(ctx, json_mode)
    session, output = context.session, context.output
    session.run_id = run_id
    model, prompt = session.model_and_prompt(model, prompt, "generate")
    spec = RequestSpec(
        command="generate",
        model=model,
        prompt=prompt,
        prompt_opt=prompt_opt,
        prompt_file=prompt_file,
        input_items=input_items or [],
        input_json=input_json,
        image=image,
        kind=kind.value if kind else None,
        validate=not no_validate,
        inline=inline,
        webhook=webhook,
    )
    if dry_run:
        from siray_cli.commands._dry_run import dry_run_one

        dry_run_one(context, spec, new)
        return
    with session.provider() as provider:
        request = build_request(session, provider, spec, transfers_for(output))
        patience = session.wait_options(timeout, None)[0] or None
        handle = submit_when_admitted(
            context,
            provider,
            request,
            patience=patience,
            budget=budget_for(session, max_cost, None),
            announce=False,
            new=new,
        )
    if output.json_mode:
        kind_made = (handle.kind or request.kind).value
        output.result({"task_id": handle.task_id, "kind": kind_made, "model": handle.model})
    else:
        output.data(handle.task_id)
    handle.hand_over(None)
    output.info(f"submitted {handle.task_id}; follow it with: siray status {handle.task_id} --wait")
