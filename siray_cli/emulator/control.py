"""The control endpoints under `/_emulator/`: counts, fault rules, the object store's uploads and
the clock, for tests and users; registered as the APIs are.
"""

from __future__ import annotations

import json
import os

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.http import Request, Response, Router, error_response, json_response
from siray_cli.emulator.state import EmulatorState


def register(router: Router, state: EmulatorState) -> None:
    """`/_emulator/...`: who it is, counts, faults, the object store and the clock, for tests
    and users."""

    def stats(request: Request) -> Response:
        return json_response(200, state.stats())

    def info(request: Request) -> Response:
        """Which emulator this is: `siray emulator stop` checks the PID before it signals one."""
        store = state.store
        return json_response(
            200,
            {
                "pid": os.getpid(),
                "started_at": state.started_at,
                "environment": state.environment,
                "s3": {"endpoint": store.endpoint, "moto": store.moto_url}
                if store.started
                else None,
            },
        )

    def add_fault(request: Request) -> Response:
        try:
            spec = json.loads(request.body)
            fault = Fault(**spec) if isinstance(spec, dict) else Fault.parse(str(spec))
        except (ValueError, TypeError) as exc:
            return error_response(400, str(exc), "invalid_fault")
        state.faults.add(fault)
        return json_response(200, {"ok": True})

    def clear_faults(request: Request) -> Response:
        state.faults.clear()
        return json_response(200, {"ok": True})

    def uploads(request: Request) -> Response:
        store = state.store
        return json_response(
            200,
            {"multipart_uploads": store.multipart_uploads(), "tokens_issued": store.tokens_issued},
        )

    def advance_clock(request: Request) -> Response:
        try:
            spec = json.loads(request.body or b"null")
            seconds = spec.get("advance") if isinstance(spec, dict) else None
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                raise ValueError('send {"advance": SECONDS}')
            offset = state.clock.advance(float(seconds))
        except ValueError as exc:
            return error_response(400, str(exc), "invalid_clock")
        return json_response(200, {"offset": offset})

    router.add("GET", "/_emulator/info", info)
    router.add("GET", "/_emulator/stats", stats)
    router.add("POST", "/_emulator/faults", add_fault)
    router.add("GET", "/_emulator/uploads", uploads)
    router.add("DELETE", "/_emulator/faults", clear_faults)
    router.add("POST", "/_emulator/clock", advance_clock)
