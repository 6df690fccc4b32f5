"""--dry-run: the request(s) `run`, `generate` and `run --batch` would send, checked as they check
them, and nothing else: no upload, no submit, no history row. The provider builds each request
with the code its submit sends (Provider.build_submit), and the Ledger gives the verdict a submit
would reach (Ledger.decide, read only), so what is shown is what would be sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from siray_cli.errors import SirayError

if TYPE_CHECKING:
    from siray_cli.domain import TaskKind
    from siray_cli.providers.base import Provider, SubmitRequest
    from siray_cli.services.ledger import Plan
    from siray_cli.services.requests import LocalFiles, Request
    from siray_cli.services.session import Session


@dataclass
class DryRun:
    """What one job would do. `would`: "submit" (a new paid request), "resend" (an unanswered
    submit sent again with its idempotency key: never a second task), "follow" (an earlier task
    whose result was never handed over: no request), "skip" (a batch line whose task succeeded:
    no request) or "report" (an unanswered submit without a key: not sent, `error` says why)."""

    provider: str
    would: str
    request: SubmitRequest | None = None
    price: dict[str, str] | None = None
    priced: bool = False  # the provider publishes prices (an estimate endpoint)
    task_id: str | None = None  # the earlier task followed or skipped
    error: str | None = None
    line: int | None = None  # a batch's line, its name and its model
    name: str | None = None
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        request = self.request
        document: dict[str, Any] = {}
        if self.line is not None:
            document.update(line=self.line, name=self.name)
        document.update(
            dry_run=True,
            provider=self.provider,
            would=self.would,
            method=request.method if request else None,
            url=request.url if request else None,
            headers=request.headers if request else None,
            body=request.body if request else None,
            price={k: float(v) for k, v in self.price.items()} if self.price else None,
            task_id=self.task_id,
            error=self.error,
        )
        return document


def dry_run(session: Session, provider: Provider, request: Request, *, new: bool) -> DryRun:
    """What `run` or `generate` would send for this checked request (check_request)."""
    assert request.key is not None
    plan = session.ledger.decide(
        provider, request.key, request.body, new=new, handed_over_too=False, read_only=True
    )
    return described(session, provider, request.kind, plan, request.files, request.webhook)


def described(
    session: Session,
    provider: Provider,
    kind: TaskKind,
    plan: Plan,
    files: LocalFiles | None,
    webhook: str | None = None,
    *,
    done: str = "follow",
) -> DryRun:
    """The request a submit under `plan` would send, its local files described (not uploaded),
    and its price where the provider tells it; none for an earlier task followed (`done`: what
    a succeeded one is to the command, "follow" or "skip")."""
    if plan.verdict in ("running", "done"):
        assert plan.task_id is not None
        would = done if plan.verdict == "done" else "follow"
        return DryRun(provider.name, would, task_id=plan.task_id)
    body = files.describe(plan.body) if files is not None else plan.body
    built = provider.build_submit(kind, body, idempotency_key=plan.idempotency_key, webhook=webhook)
    priced = provider.capabilities.supports_estimate
    return DryRun(provider.name, plan.verdict, built, _price(session, provider, body), priced)


def _price(session: Session, provider: Provider, body: dict[str, Any]) -> dict[str, str] | None:
    """The provider's estimate (a free request), or None: a provider without prices, or an
    estimate that failed (said as a warning: the dry run checks the request, not the price)."""
    if not provider.capabilities.supports_estimate:
        return None
    try:
        return provider.estimate(body)
    except SirayError as exc:
        session.notices.warn(f"no price: {exc.message}")
        return None
