"""One invocation of siray, as the services see it: the settings, the task history, the provider,
and where messages for people go (callbacks the command layer gives; nothing here prints)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from siray_cli.environment import Environment
from siray_cli.errors import UsageError
from siray_cli.settings import Settings
from siray_cli.settings_keys import MODEL, POLL_INTERVAL, TIMEOUT

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.ledger import Ledger
    from siray_cli.services.run_identity import RunIdentity
    from siray_cli.storage.history import History
    from siray_cli.storage.records import Record

Say = Callable[[str], None]


def _silent(message: str) -> None:
    return None


@dataclass
class Notices:
    """Where the services' messages for people go. `always` is for what must be seen even with
    --quiet (a task id, how to resume)."""

    info: Say = _silent
    always: Say = _silent
    warn: Say = _silent
    trace: Say = _silent
    add_secret: Say = _silent
    debug: bool = False


@dataclass
class Session:
    """`settings` may be given as a function that makes them: they are then read (the config
    file included) on first use, so a run that only prints help reads nothing."""

    make_settings: Settings | Callable[[], Settings]
    notices: Notices = field(default_factory=Notices)
    environment: Environment = field(default_factory=Environment)
    _history: History | None = None
    _settings: Settings | None = None
    _ledger: Ledger | None = None
    run_id: str | None = None  # --run-id: the run the idempotency keys derive from (see run)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            made = self.make_settings
            self._settings = made if isinstance(made, Settings) else made()
        return self._settings

    @property
    def history(self) -> History:
        """The task history, opened on first use (a broken one only warns)."""
        if self._history is None:
            from siray_cli.storage.history import DB_NAME, History
            from siray_cli.storage.private import data_dir

            enabled = self.settings.history
            self._history = History(data_dir() / DB_NAME, self.notices.warn, enabled=enabled)
        return self._history

    @property
    def ledger(self) -> Ledger:
        """Every decision about paid tasks (services.ledger), over the history."""
        if self._ledger is None:
            from siray_cli.services.ledger import Ledger

            self._ledger = Ledger(
                self.history,
                self.notices,
                self.settings.profile_name,
                self.command_prefix(),
                run=self.run,
            )
        return self._ledger

    @property
    def run(self) -> RunIdentity | None:
        """The CI run this invocation is part of (--run-id, SIRAY_RUN_ID, or a GitHub Actions or
        GitLab CI job), or None."""
        from siray_cli.services.run_identity import run_identity

        return run_identity(self.environment.variables, self.run_id)

    def command_prefix(self) -> str:
        """How a hint spells siray so that the command it gives reaches the same provider, host
        and profile as this one: every root flag that chose them (values from the environment
        or the config stay where they are). An --api-key flag is never repeated: the hint says
        so instead."""
        from shlex import quote

        from siray_cli.providers import command_prefix

        settings = self.settings
        words = [command_prefix(settings.provider)]
        if settings.profile_source.startswith("flag"):
            words.append(f"--profile {quote(settings.profile_name)}")
        for name, flag in (("base_url", "--base-url"), ("gateway_url", "--gateway-url")):
            setting = settings.get(name)
            if setting.source.startswith("flag") and setting.value:
                words.append(f"{flag} {quote(setting.value)}")
        if settings.get("api_key").source.startswith("flag"):
            words.append("--api-key KEY")
        return " ".join(words)

    def close(self) -> None:
        """Close the history (SQLite folds its write-ahead log back in when the last connection
        closes), once the command is done."""
        if self._history is not None:
            self._history.close()

    @property
    def read_timeout(self) -> float:
        return self.settings.read_timeout

    @property
    def backoff(self) -> float:
        return self.settings.retry_backoff

    def wait_options(
        self, timeout: float | None, poll_interval: float | None
    ) -> tuple[float, float | None]:
        """(timeout, 0 for none; poll interval or None for the adaptive schedule)."""
        if timeout == 0:
            self.notices.trace("timeout = 0 (none) from flag --timeout")
            resolved_timeout = 0.0
        else:
            resolved_timeout = self.settings.defaulted(TIMEOUT, timeout)
        return resolved_timeout, self.settings.read(POLL_INTERVAL, poll_interval)

    def providers(self) -> Providers:
        """The provider in effect, and those that created tasks elsewhere (see Providers)."""
        return Providers(self)

    def provider(
        self,
        api_key: str | None = None,
        *,
        name: str | None = None,
        base_url: str | None = None,
    ) -> Provider:
        """The provider in effect (or `name`), connected with its own credential; `base_url`
        reaches the host that created a task (from the history) rather than the one in effect.
        One provider's credential is never sent to another."""
        from siray_cli.providers import Connection, open_provider

        settings = self.settings if name is None else self.settings.for_provider(name)
        if self.notices.debug:
            for line in settings.describe():
                self.notices.trace(line)
        key = api_key or settings.require_api_key()
        self.notices.add_secret(key)  # an id:secret credential: the secret part too
        if not usable_key(key):
            from siray_cli.errors import UnusableAPIKeyError

            raise UnusableAPIKeyError(
                "the API key in effect has characters an HTTP header cannot carry (non-ASCII, "
                "control characters or spaces)",
                hint="check how it was set: `siray auth status` says where it comes from",
            )
        set_by = "the task's record in the history" if base_url else settings.base_url.source
        connection = Connection(
            api_key=key,
            base_url=base_url or settings.base_url.value or "",
            set_by=None if set_by == "default" else set_by,
            gateway_url=settings.gateway_url.value,
            trace=self.notices.trace if self.notices.debug else None,
            backoff=self.backoff,
            read_timeout=self.read_timeout,
            max_rate=self.settings.max_rate,
        )
        return open_provider(settings.provider, connection)

    @property
    def provider_name(self) -> str:
        return self.settings.provider

    def model_and_prompt(
        self, first: str | None, second: str | None, command: str = "run"
    ) -> tuple[str, str | None]:
        """MODEL [PROMPT], where a lone argument that is not a model name is the prompt of the
        default model (`siray run "a red fox"` with `model` set); `command` is the siray command
        asked, as a hint spells it."""
        if first is not None and second is None and not looks_like_model(first):
            default = self.settings.read(MODEL)
            if default is not None:
                return default, first
        model = self.settings.read(MODEL, first)
        if model is None:
            raise UsageError(
                "no model given",
                hint=f"{self.command_prefix()} {command} MODEL PROMPT, or set a default: "
                "siray config set model MODEL",
            )
        return model, second


class Providers:
    """Providers by task: a task is asked about where it was created (its provider and base URL
    in the history), unless --base-url names a host; anything else goes to the one in effect.
    Connections are opened on first use and closed together."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._open: dict[str, Provider] = {}
        self._by_task: dict[str, TaskHandle] = {}
        self.unreachable: set[str] = set()  # hosts that did not answer (services.tasks)
        self._lock = threading.RLock()  # a batch's workers share one

    def __enter__(self) -> Providers:
        return self

    def __exit__(self, *exc: object) -> None:
        for provider in self._open.values():
            provider.close()
        self._open.clear()

    @property
    def current(self) -> Provider:
        return self._connect(None, None)

    def named(self, name: str | None) -> Provider:
        """The provider `name` (a batch line's), with its own credential and host; the one in
        effect for None."""
        if name is None or name == self._session.settings.provider:
            return self.current
        from siray_cli.providers import PROVIDERS

        if name not in PROVIDERS:
            raise UsageError(f"unknown provider {name!r}", hint=f"one of {', '.join(PROVIDERS)}")
        return self._connect(name, None)

    def handle(self, task_id: str) -> TaskHandle:
        """The task `task_id`, asked where the history says it was created (the newest of the
        hosts that used that id); a task the history does not know is asked of the provider in
        effect."""
        from siray_cli.services.handle import TaskHandle

        with self._lock:
            if task_id not in self._by_task:
                record = self._record_of(task_id)
                self._by_task[task_id] = TaskHandle(
                    task_id,
                    self._provider_of(task_id, record),
                    self._session.ledger,
                    record=record,
                    resuming=True,  # taken up after the command that submitted it
                )
            return self._by_task[task_id]

    def _record_of(self, task_id: str) -> Record | None:
        """The task's record: of several hosts that handed out this id, the one --base-url (or
        the host in effect) names, else the newest. The record is the host that is asked."""
        settings = self._session.settings
        history = self._session.history
        host = (settings.base_url.value or "").rstrip("/")
        here = history.find(task_id, provider=settings.provider, base_url=host)
        if here is not None or settings.base_url.source.startswith("flag"):
            return here
        return history.find(task_id)

    def _provider_of(self, task_id: str, record: Record | None) -> Provider:
        settings = self._session.settings
        if record is None or not record.base_url:
            return self.current
        if record.provider != settings.provider:
            self._session.notices.trace(f"{task_id} is a {record.provider} task: asking there")
            return self._connect(record.provider, record.base_url)
        setting = settings.base_url
        if setting.source.startswith("flag"):
            return self.current
        if record.base_url.rstrip("/") == (setting.value or "").rstrip("/"):
            return self.current
        self._session.notices.trace(f"{task_id} was created on {record.base_url}: asking there")
        return self._connect(record.provider, record.base_url)

    def _connect(self, name: str | None, base_url: str | None) -> Provider:
        key = f"{name or ''} {base_url or ''}"
        with self._lock:
            if key not in self._open:
                self._open[key] = self._session.provider(name=name, base_url=base_url)
            return self._open[key]


def looks_like_model(text: str) -> bool:
    return "/" in text and not any(ch.isspace() for ch in text)


def usable_key(key: str) -> bool:
    """Printable ASCII without spaces: what an Authorization header can carry as it is."""
    return bool(key) and all("!" <= ch <= "~" for ch in key)
