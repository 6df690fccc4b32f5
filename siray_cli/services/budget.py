"""Spending caps: `--max-cost` and `--max-tasks`. Every create a command would send is priced
first (a provider's price endpoint, once per distinct request, or the profile's price table),
and charged to one budget just before it is sent, under the job's lock: concurrent workers race
for the last of it, and no create is ever sent that would take the committed total past the cap.
A task rejoined or followed costs nothing now, so it is never charged."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from siray_cli.errors import OverBudgetError, UsageError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from siray_cli.providers.base import Provider
    from siray_cli.services.batch import BatchOptions
    from siray_cli.services.session import Providers, Session

UNITS = ("usd", "credits")
_AMOUNT = re.compile(r"^\s*(\$)?\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Cap:
    amount: Decimal
    unit: str  # usd or credits

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}"


def parse_cap(text: str) -> Cap:
    """`--max-cost`: `5`, `5usd`, `$5`, `2.5 usd`, `300credits` (no unit: usd)."""
    match = _AMOUNT.match(text)
    unit = (match.group(3).lower() or "usd") if match else ""
    if unit == "credit":
        unit = "credits"
    if match is None or unit not in UNITS or (match.group(1) and unit != "usd"):
        raise UsageError(
            f"--max-cost {text!r} is not an amount (e.g. 5, 2.50usd, $2.50, 300credits)"
        )
    return Cap(Decimal(match.group(2)), unit)


def price_table(values: Mapping[str, Any]) -> dict[str, Decimal]:
    """The profile's `[prices]` table (model = price of one task, in the unit of --max-cost), for
    a provider without a price endpoint."""
    table = values.get("prices") or {}
    if not isinstance(table, dict):
        raise UsageError("the profile's prices must be a table of model = price")
    prices = {}
    for model, price in table.items():
        try:
            prices[str(model)] = Decimal(str(price))
        except InvalidOperation:
            raise UsageError(f"prices: {model} = {price!r} is not a number") from None
        if prices[str(model)] < 0:
            raise UsageError(f"prices: {model} = {price} is negative")
    return prices


def unpriced(
    provider: str, model: str, *, what: str = "", after: str = "", unit: str
) -> UsageError:
    """A provider without a price endpoint, and no price for `model` in the profile's table."""
    return UsageError(
        f"{what}{provider} publishes no prices, and the profile's price table has none for "
        f"{model}{after}",
        hint=f'add it to the profile in config.toml: [profiles.NAME.prices] "{model}" = PRICE'
        + unit,
    )


class Budget:
    """What a command may still spend and submit (None: no cap of that kind)."""

    def __init__(
        self, cap: Cap | None, max_tasks: int | None, prices: Mapping[str, Decimal]
    ) -> None:
        self.cap, self.max_tasks = cap, max_tasks
        self._prices = prices
        self._quotes: dict[str, Decimal] = {}  # a distinct request -> its price, asked once
        self._lock = threading.Lock()
        self.committed = Decimal(0)
        self.sent = 0
        self.refused = 0

    @property
    def active(self) -> bool:
        return self.cap is not None or self.max_tasks is not None

    def check(self, provider: Provider, model: str) -> None:
        """Before anything is paid: a cap this provider can price for this model."""
        if self.cap is None:
            return
        if provider.capabilities.supports_estimate:
            if self.cap.unit not in UNITS:
                raise UsageError(f"--max-cost: {provider.name} prices in usd or credits")
            return
        if model not in self._prices:
            raise unpriced(
                provider.name,
                model,
                what="--max-cost: ",
                after="; nothing was submitted",
                unit=" (per task, in the unit of --max-cost), or cap the count with --max-tasks",
            )

    def quote(self, provider: Provider, model: str, body: dict[str, Any]) -> Decimal:
        """The price of one create of `body`, in the cap's unit."""
        assert self.cap is not None
        if not provider.capabilities.supports_estimate:
            return self._prices[model]
        key = hashlib.sha256(
            json.dumps([provider.name, body], sort_keys=True, default=str).encode()
        ).hexdigest()
        with self._lock:
            known = self._quotes.get(key)
        if known is None:
            known = Decimal(str(provider.estimate(body)[self.cap.unit]))
            with self._lock:
                self._quotes[key] = known
        return known

    def charge(self, provider: Provider, model: str, body: dict[str, Any]) -> None:
        """Commit one create's price and count, or raise OverBudgetError (nothing is sent)."""
        price = self.quote(provider, model, body) if self.cap is not None else Decimal(0)
        with self._lock:
            if self.max_tasks is not None and self.sent >= self.max_tasks:
                self.refused += 1
                raise OverBudgetError(
                    f"not submitted: --max-tasks {self.max_tasks} reached",
                    hint="raise --max-tasks to submit more",
                )
            if self.cap is not None and self.committed + price > self.cap.amount:
                self.refused += 1
                raise OverBudgetError(
                    f"not submitted: it would cost {price} {self.cap.unit}, and "
                    f"{self.committed} of --max-cost {self.cap} is committed",
                    hint="raise --max-cost to submit it",
                )
            self.committed += price
            self.sent += 1

    def refund(self, provider: Provider, model: str, body: dict[str, Any]) -> None:
        """A create the server certainly refused (nothing was made): its charge given back."""
        price = self.quote(provider, model, body) if self.cap is not None else Decimal(0)
        with self._lock:
            self.committed -= price
            self.sent -= 1

    def summary(self) -> str:
        parts = []
        if self.cap is not None:
            parts.append(f"{self.committed} of {self.cap} committed")
        if self.max_tasks is not None:
            parts.append(f"{self.sent} of {self.max_tasks} tasks")
        return ", ".join(parts)


@dataclass
class Charge:
    """One create's charge to a budget, made by the Ledger just before it sends the create, and
    given back when the server certainly refused it."""

    budget: Budget
    provider: Provider
    model: str
    body: dict[str, Any]

    price: Decimal | None = None  # what was charged, once it was

    @property
    def unit(self) -> str | None:
        """The cap's unit: a provider's own, or the unit the profile's table is read in."""
        return None if self.budget.cap is None else self.budget.cap.unit

    def charge(self) -> None:
        self.budget.charge(self.provider, self.model, self.body)
        if self.budget.cap is not None:
            self.price = self.budget.quote(self.provider, self.model, self.body)

    def refund(self) -> None:
        self.budget.refund(self.provider, self.model, self.body)


def budget_for(session: Session, max_cost: str | None, max_tasks: int | None) -> Budget | None:
    """The command's budget from --max-cost and --max-tasks (None: neither given); the
    profile's price table is read only when a cap is given."""
    if max_cost is None and max_tasks is None:
        return None
    if max_tasks is not None and max_tasks < 1:
        raise UsageError("--max-tasks must be 1 or more")
    cap = parse_cap(max_cost) if max_cost is not None else None
    prices = price_table(session.settings.profile_values()) if cap is not None else {}
    return Budget(cap, max_tasks, prices)


@dataclass
class ModelPrice:
    """What a batch's lines of one model would cost, by unit."""

    provider: str
    model: str
    lines: int = 0
    sent: int = 0  # lines that would send a create (the others follow an earlier task)
    totals: dict[str, Decimal] | None = None


def estimate_batch(
    session: Session, providers: Providers, options: BatchOptions
) -> list[ModelPrice]:
    """`siray estimate --batch`: every line checked as a run checks it (nothing uploaded,
    submitted or recorded), and the price of the creates it would send, by model: the
    provider's estimate, or the profile's price table (in its own unit, "price"). A model
    that cannot be priced is refused (exit 2)."""
    from siray_cli.services.batch import dry_run_batch

    table: dict[str, Decimal] | None = None
    by_model: dict[tuple[str, str], ModelPrice] = {}
    for run in dry_run_batch(session, providers, options):
        model = run.model or "?"
        entry = by_model.setdefault((run.provider, model), ModelPrice(run.provider, model))
        entry.lines += 1
        if run.would not in ("submit", "resend"):
            continue
        entry.sent += 1
        if run.priced:
            if run.price is None:
                raise UsageError(f"line {run.line}: {run.provider} gave no price for {model}")
            amounts = {unit: Decimal(str(value)) for unit, value in run.price.items()}
        else:
            if table is None:
                table = price_table(session.settings.profile_values())
            if model not in table:
                raise unpriced(run.provider, model, unit=" (per task)")
            amounts = {"price": table[model]}
        totals = entry.totals or {}
        for unit, amount in amounts.items():
            totals[unit] = totals.get(unit, Decimal(0)) + amount
        entry.totals = totals
    return list(by_model.values())
