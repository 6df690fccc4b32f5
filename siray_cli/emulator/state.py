"""The emulator's configuration and the state its APIs share: the task store read against an
advanceable clock, request counts, fault rules and the object store. It sits below the API
modules and imports neither them nor the server, so each API can be handed it at registration.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from siray_cli.emulator import catalogue
from siray_cli.emulator.clock import Clock
from siray_cli.emulator.faults import Faults
from siray_cli.emulator.http import Request
from siray_cli.emulator.limits import RateLimit
from siray_cli.emulator.storage import ObjectStore
from siray_cli.emulator.tasks import (
    DUPLICATE_WINDOW,
    FAIL_MARKER,
    HOLD_MARKER,
    Event,
    Task,
    build_timeline,
)

EMULATOR_API_KEY = "siray-emulator-key"
HIGGSFIELD_KEY = "hfkey-2f9c:s3cr3t-hf-emulator-5d1e"  # id:secret, sharing nothing
DEFAULT_PORT = 8787


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = EMULATOR_API_KEY
    higgsfield_key: str = HIGGSFIELD_KEY  # id:secret
    higgsfield_concurrency: int | None = None  # Higgsfield requests queued or running at once
    task_seconds: float = 3.0
    task_jitter: float = 0.15  # each task's length varies by up to this share
    create_shape: str = "nested"  # nested: data.task_id (API.md); flat: top-level task_id; id
    cancel_supported: bool = True
    seed: int | None = None
    log: Callable[[str], None] | None = None
    extra_models: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    sts_token_requests: int | None = None  # each upload token expires after this many S3 requests
    sts_mode: str = "ok"  # ok, bad-secret or no-token: credentials the store will refuse
    tls: bool = False  # serve https (the API and the S3 store) with a throwaway certificate
    clock: Clock = field(default_factory=Clock)  # what every task timeline is read against
    rate_limit: float | None = None  # API requests a second per key (limits.py), else none


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.tasks: dict[str, Task] = {}
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.user_agents: Counter[str] = Counter()
        self.faults = Faults(config.seed)
        self.rate_limit = None if config.rate_limit is None else RateLimit(config.rate_limit)
        self.models = {**catalogue.MODELS, **config.extra_models}
        self.store = ObjectStore(self.faults, config.sts_token_requests, config.log)
        self._random = random.Random(config.seed)
        self.started_at = time.time()
        self.environment: dict[str, str] = {}  # what points a client at it (the server sets it)
        self._answering = 0
        self._answered = threading.Condition()

    @contextmanager
    def answering(self) -> Iterator[None]:
        """Counts the requests being answered, so a stop can wait for their log lines."""
        with self._answered:
            self._answering += 1
        try:
            yield
        finally:
            with self._answered:
                self._answering -= 1
                self._answered.notify_all()

    def wait_answered(self, timeout: float) -> None:
        with self._answered:
            self._answered.wait_for(lambda: self._answering == 0, timeout=timeout)

    def count(self, method: str, template: str, user_agent: str) -> None:
        with self.lock:
            self.requests[f"{method} {template}"] += 1
            self.user_agents[user_agent] += 1

    def public_base(self, request: Request) -> str:
        """The origin the client reached, for URLs handed back to it."""
        host = request.headers.get("Host") or f"{self.config.host}:{self.config.port}"
        return f"{'https' if self.config.tls else 'http'}://{host}"

    def stats(self) -> dict[str, Any]:
        with self.lock:
            tasks = list(self.tasks.values())
            requests = dict(self.requests)
            user_agents = dict(self.user_agents)
        now = self.clock.monotonic()
        seen: dict[str, float] = {}
        duplicates = 0
        for task in sorted(tasks, key=lambda t: t.created):
            body = json.dumps([task.kind, task.body], sort_keys=True)
            if body in seen and task.created - seen[body] < DUPLICATE_WINDOW:
                duplicates += 1
            seen[body] = task.created
        return {
            "tasks_created": len(tasks),
            "duplicates": duplicates,
            "requests": requests,
            "user_agents": user_agents,
            "tasks": [
                {
                    "task_id": task.task_id,
                    "model": task.model,
                    "kind": task.kind,
                    "status": task.current(now)[0].status,
                    "created_at": task.created_wall,
                    "status_requests": task.status_requests,
                    "finishes_at": None
                    if task.finish_offset is None or task.cancelled_at
                    else task.created_wall + task.finish_offset,
                }
                for task in tasks
            ],
        }

    def new_task(
        self,
        kind: str,
        model: str,
        body: dict[str, Any],
        fail_reason: str,
        task_id: str | None = None,
    ) -> Task:
        with self.lock:
            task_id = task_id or f"{kind}_{secrets.token_hex(6)[:11]}"
            seed = self._random.random()
        prompt = str(body.get("prompt", ""))
        rng = random.Random(f"{task_id}{seed}")
        failed = FAIL_MARKER in prompt
        if failed and not fail_reason:
            fail_reason = "emulator: the prompt asked for a failure ([fail])"
        timeline = build_timeline(
            rng,
            self.config.task_seconds,
            hold=HOLD_MARKER in prompt,
            jitter=self.config.task_jitter,
            fail_early=bool(fail_reason) and not failed,
        )
        if failed:
            timeline[-1] = Event(timeline[-1].offset, "FAILURE", timeline[-2].progress)
        task = Task(
            task_id,
            kind,
            model,
            body,
            self.clock.monotonic(),
            self.clock.time(),
            timeline,
            fail_reason,
        )
        with self.lock:
            self.tasks[task_id] = task
        return task
