"""--dry-run, as `run`, `generate` and `run --batch` print it: each request as data on stdout (a
JSON document with --json, a readable block, or a batch's line of one), and on stderr that
nothing was uploaded, submitted or recorded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from siray_cli.errors import ExitCode

if TYPE_CHECKING:
    from siray_cli.commands._context import AppContext
    from siray_cli.output import Output
    from siray_cli.services.dry_run import DryRun
    from siray_cli.services.requests import RequestSpec

NOTHING_DONE = "dry run: nothing was uploaded, submitted or recorded"


def dry_run_one(context: AppContext, spec: RequestSpec, new: bool) -> int:
    """`run` or `generate` with --dry-run: the request checked and shown, never sent."""
    from siray_cli.services.dry_run import dry_run
    from siray_cli.services.requests import check_request

    session = context.session
    with session.provider() as provider:
        one = dry_run(session, provider, check_request(session, provider, spec), new=new)
    show(context.output, [one], batch=False)
    return ExitCode.OK


def show(output: Output, runs: list[DryRun], *, batch: bool) -> None:
    for one in runs:
        if output.json_mode:
            output.result({"type": "request", **one.to_json()})
        elif batch:
            output.data(_line(one))
        else:
            output.data_lines(_block(one))
    if batch and output.json_mode:
        would: dict[str, int] = {}
        for one in runs:
            would[one.would] = would.get(one.would, 0) + 1
        output.result({"type": "summary", "dry_run": True, "total": len(runs), "would": would})
    output.info(NOTHING_DONE)


def _price(one: DryRun) -> str:
    if not one.priced:
        return "price: not published by this provider"
    if one.price is None:
        return "price: not told"
    return "price: " + ", ".join(f"{value} {name}" for name, value in one.price.items())


def _without_request(one: DryRun) -> str:
    if one.would == "follow":
        return f"no request: would follow task {one.task_id}, whose result was never handed over"
    if one.would == "skip":
        return f"no request: task {one.task_id} already succeeded"
    return f"no request: {one.error}"


def _block(one: DryRun) -> list[str]:
    request = one.request
    if request is None:
        return [_without_request(one)]
    lines = [f"{request.method} {request.url}"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    lines += [f"provider: {one.provider}", _price(one)]
    if one.would == "resend":
        lines.append("an earlier submit got no answer: sent again with its idempotency key")
    return lines + json.dumps(request.body, indent=2, ensure_ascii=False).splitlines()


def _line(one: DryRun) -> str:
    label = f"line {one.line}" + (f" ({one.name})" if one.name else "")
    request = one.request
    if request is None:
        return f"{label}\t{_without_request(one)}"
    body = json.dumps(request.body, ensure_ascii=False)
    return f"{label}\t{request.method} {request.url}\t{body}\t{_price(one)}"
