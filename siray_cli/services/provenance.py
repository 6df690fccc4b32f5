"""What made a file, and that request again: the record a saved PNG carries (written here, put in
the file by storage.downloads), a file looked up by that record or by its SHA-256 in the history,
and `siray rerun`'s request built from either.

A record holds what was asked (provider, model, kind, prompt, the other inputs), the task, when it
was submitted and by which siray; never a key, a host or an output URL (either may carry a
credential), and data URLs only as their size (storage.records.redact_data_urls)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from siray_cli.domain import TaskKind
from siray_cli.errors import UsageError
from siray_cli.storage.records import has_redacted_data, redact_data_urls

if TYPE_CHECKING:
    from siray_cli.domain import Task
    from siray_cli.services.handle import TaskHandle
    from siray_cli.services.requests import RequestSpec
    from siray_cli.services.session import Session
    from siray_cli.storage.records import Record

FORMAT = 1  # of the embedded record: a reader skips what it does not know


def _when(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _split(request: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """A recorded request as (prompt, the other inputs): its model is kept on its own."""
    inputs = {k: v for k, v in request.items() if k not in ("model", "prompt")}
    prompt = request.get("prompt")
    return (prompt if isinstance(prompt, str) else None), inputs


def embedded_record(handle: TaskHandle, task: Task, index: int) -> str:
    """The record the `index`th output of `task` carries (JSON), from what its handle knows:
    the request it was sent with (a task siray never saw submitted has none: its prompt and
    inputs are then null)."""
    from siray_cli import __version__

    prompt: str | None = None
    inputs: dict[str, Any] | None = None
    if handle.request is not None:
        prompt, inputs = _split(redact_data_urls(handle.request))
    document = {
        "format": FORMAT,
        "siray_version": __version__,
        "task_id": task.task_id,
        "provider": handle.provider.name,
        "model": handle.model or (handle.request or {}).get("model"),
        "kind": (handle.kind or task.kind).value,
        "prompt": prompt,
        "inputs": inputs,
        "created": _when(handle.created_at or task.submit_time),
        "output": index,
    }
    return json.dumps(document, ensure_ascii=False)


@dataclass(frozen=True)
class Provenance:
    """What made a file (or what a task in the history was asked), as `info` shows it and
    `rerun` sends it again."""

    source: Literal["embedded", "history"]
    task_id: str
    provider: str
    model: str
    kind: str | None = None
    prompt: str | None = None
    inputs: dict[str, Any] | None = None  # None: not known (the record holds no request)
    created: str | None = None
    version: str | None = None  # the siray that wrote an embedded record
    output: int | None = None  # which output of the task the file is
    path: Path | None = None  # the file looked at
    sha256: str | None = None
    saved_as: str | None = None  # where the history says the file was saved

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else f"task {self.task_id}"

    def to_json(self) -> dict[str, Any]:
        return {
            "file": None if self.path is None else str(self.path),
            "sha256": self.sha256,
            "source": self.source,
            "task_id": self.task_id,
            "provider": self.provider,
            "model": self.model,
            "kind": self.kind,
            "prompt": self.prompt,
            "inputs": self.inputs,
            "created": self.created,
            "siray_version": self.version,
            "output": self.output,
            "saved_as": self.saved_as,
        }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def from_embedded(text: str, path: Path, sha256: str) -> Provenance | None:
    """The record a file carries, read as untrusted data (a file from anywhere may carry one):
    None unless it names at least a task and a provider as text (the model of a task fetched
    by id but never seen submitted is not known)."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    task_id, provider, model = (_text(document.get(k)) for k in ("task_id", "provider", "model"))
    if not (task_id and provider):
        return None
    inputs = document.get("inputs")
    kind = _text(document.get("kind"))
    output = document.get("output")
    return Provenance(
        source="embedded",
        task_id=task_id,
        provider=provider,
        model=model or "",
        kind=kind if kind in {k.value for k in TaskKind} else None,
        prompt=_text(document.get("prompt")),
        inputs=inputs if isinstance(inputs, dict) else None,
        created=_text(document.get("created")),
        version=_text(document.get("siray_version")),
        output=output if isinstance(output, int) and not isinstance(output, bool) else None,
        path=path,
        sha256=sha256,
    )


def from_record(
    record: Record, path: Path | None = None, sha256: str | None = None, saved_as: str | None = None
) -> Provenance:
    prompt, inputs = _split(record.request)
    return Provenance(
        source="history",
        task_id=record.task_id or "",
        provider=record.provider,
        model=record.model,
        kind=record.kind,
        prompt=prompt,
        inputs=inputs,
        created=_when(record.submitted_at),
        path=path,
        sha256=sha256,
        saved_as=saved_as,
    )


def identify(session: Session, path: Path) -> Provenance:
    """What made the file `path`: the record it carries, else the history's record of a file
    with its SHA-256; UsageError when it is neither (not a file siray saved)."""
    from siray_cli.storage.provenance import read_record, sha256_of

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        digest = sha256_of(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    text = read_record(path)
    found = from_embedded(text, path, digest) if text is not None else None
    if found is not None:
        return found
    history = session.history
    saved = history.by_digest(digest) if history.exists else []
    if saved:
        record, saved_as = saved[0]
        return from_record(record, path, digest, saved_as)
    raise UsageError(
        f"{path}: not made by siray (it carries no siray record, and the history knows no file "
        "with its SHA-256)"
    )


def find(session: Session, what: str) -> Provenance:
    """`rerun`'s FILE|TASK_ID: an existing file's record (see identify), else the task of that
    id in the history."""
    path = Path(what).expanduser()
    if path.is_file():
        return identify(session, path)
    history = session.history
    record = history.find(what) if history.exists else None
    if record is None or record.task_id is None:
        raise UsageError(
            f"{what!r} is neither a file nor a task in the history",
            hint="give a file siray saved, or a task id from `siray history`",
        )
    return from_record(record)


def rerun_spec(
    session: Session,
    found: Provenance,
    *,
    model: str | None,
    prompt: str | None,
    input_items: list[str],
    validate: bool,
) -> RequestSpec:
    """The recorded request as `run` would take it, the overrides on top: `-i` inputs over the
    recorded ones, another model or prompt (the recorded inputs it does not take are left out,
    with a note). Inputs that named local files are the URLs they were uploaded to then; one sent
    inline (a data URL, recorded only by its size) must be given again."""
    from siray_cli.services.inputs import parse_input
    from siray_cli.services.requests import RequestSpec

    if found.provider != session.provider_name:
        raise UsageError(
            f"{found.label} was made with {found.provider}, and the provider in effect is "
            f"{session.provider_name}",
            hint=f"siray --provider {found.provider} rerun ...",
        )
    if found.inputs is None or not found.model:
        raise UsageError(
            f"the record of {found.label} holds no request to send again (siray did not submit it)",
            hint=f"submit it anew with siray run {found.model or 'MODEL'} PROMPT",
        )
    given = {parse_input(item).key for item in input_items}
    lost = [k for k, v in found.inputs.items() if k not in given and has_redacted_data(v)]
    if lost:
        raise UsageError(
            f"input {lost[0]} of {found.label} was sent inline (a data URL), and the history "
            "keeps only its size",
            hint=f"give it again: -i {lost[0]}=@FILE",
        )
    return RequestSpec(
        model=model or found.model,
        prompt=prompt if prompt is not None else found.prompt,
        input_items=list(input_items),
        base={k: v for k, v in found.inputs.items() if k not in given},  # -i replaces them
        kind=found.kind if model is None else None,
        validate=validate,
        fit_base=model is not None and model != found.model,
    )
