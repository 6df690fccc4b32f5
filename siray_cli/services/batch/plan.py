"""Planning a batch before anything is paid for: each line's request built and checked (its
model's schema fetched once), files the lines would write that exist already refused, the
local files of the lines that may be submitted uploaded, and one run of a batch at a time."""

from __future__ import annotations

import bisect
import fnmatch
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siray_cli.errors import BadLinesError, BatchBusyError, UsageError
from siray_cli.names import safe_name, with_index
from siray_cli.providers import command_prefix
from siray_cli.services.batch.jobs import MAX_REPORTED, Job, PreparedJob, each_line

if TYPE_CHECKING:
    from collections.abc import Callable

    from siray_cli.domain import ModelInfo, TaskKind
    from siray_cli.names import NameTemplate
    from siray_cli.services.ledger import PriorAttempt
    from siray_cli.services.requests import LocalFiles
    from siray_cli.services.session import Providers, Session
    from siray_cli.services.uploads import Transfers


def builder(
    session: Session, providers: Providers, default_model: str | None, validate: bool, files: Any
) -> Callable[[Job], tuple[TaskKind, dict[str, Any]]]:
    from siray_cli.services.requests import build_body, checked_model, pick_kind

    infos: dict[tuple[str, str], ModelInfo] = {}

    def build(job: Job) -> tuple[TaskKind, dict[str, Any]]:
        model = job.model or default_model
        if not model:
            raise UsageError("no model (give one on the line, or --model for every line)")
        provider = providers.named(job.provider)
        info = None
        if validate:
            info = infos.get((provider.name, model)) or checked_model(session, provider, model)
            if info is not None:
                infos[(provider.name, model)] = info
        body = build_body(
            model,
            job.prompt,
            dict(job.inputs),
            job.items,
            info=info,
            local_file=files.add,
            command=command_prefix(provider.name),
        )
        return pick_kind(model, None, info), body

    return build


def upload_files(
    providers: Providers,
    jobs: list[PreparedJob],
    found: dict[int, PriorAttempt],
    files: LocalFiles,
    transfers: Transfers,
) -> None:
    """Upload the local files the lines name, once each per provider, all of one provider's
    together; only those of lines that may be submitted now (a line whose earlier task
    succeeded, is still running or waits on an unanswered submit needs none)."""
    by_provider: dict[str | None, list[PreparedJob]] = {}
    for job in jobs:
        if found[job.line].needs_new_body:
            by_provider.setdefault(job.provider, []).append(job)
    for name, group in by_provider.items():
        provider = providers.named(name)
        files.upload(provider, [job.body for job in group], transfers)
        for job in group:
            job.body = files.resolve(provider, job.body, transfers)


def _known_fields(job: PreparedJob, template: NameTemplate, date: str) -> dict[str, str] | None:
    """What a template's fields are for a line before its task exists; None when its names
    hold its task's id (`{task_id}`, or `{name}` of a line without one), so are its own."""
    if "task_id" in template.fields or ("name" in template.fields and job.name is None):
        return None
    model = str(job.body.get("model", ""))
    return {"name": job.name or "", "model": model, "line": str(job.line), "date": date}


def refuse_template_clashes(jobs: list[PreparedJob], template: NameTemplate, date: str) -> None:
    """Lines whose files a name template would name alike (`{model}.{ext}` for two lines of
    one model): refused before anything is paid for, each named."""
    first: dict[str, int] = {}
    problems = []
    for job in jobs:
        known = _known_fields(job, template, date)
        if known is None:
            continue
        key = template.pattern(known, "\0").casefold()  # as a file name, on any file system
        if key in first:
            problems.append(
                f"line {job.line}: --name-template {template.text!r} names its files as it "
                f"names those of line {first[key]}"
            )
        else:
            first[key] = job.line
    if problems:
        raise _refused(
            problems,
            f"{len(problems)} line{'s' if len(problems) > 1 else ''} would overwrite another "
            "line's files",
            "put a field that tells the lines apart in the template ({line}, {name} or {task_id})",
        )


def _refused(problems: list[str], what: str, hint: str) -> BadLinesError:
    """A batch refused before any submit, for `problems` ("line N: why" each)."""
    return BadLinesError(
        f"{what}, nothing was submitted: " + "; ".join(problems[:MAX_REPORTED]),
        each_line(problems),
        hint=hint,
    )


def _planned_globs(job: PreparedJob, template: NameTemplate | None, date: str) -> list[str]:
    """Globs of the files a line would write, as far as they are known before its task is."""
    import glob

    if template is None:
        if job.name is None:
            return []  # named after its task, which does not exist yet
        stem = glob.escape(safe_name(job.name))
        return [f"{stem}.*", f"{stem}_[0-9]*.*"]
    known = _known_fields(job, template, date)
    if known is None:
        return []
    pattern = template.pattern(known, "*", index="[0-9]*")  # safe text: no glob character
    return [pattern] if "n" in template.fields else [pattern, with_index(pattern, "*", "[0-9]*")]


class _Listing:
    """A directory's names, read once, and those a glob of one name matches: a batch's ten
    thousand lines each have their globs, and a glob of the directory for each (a listing of it
    and a compiled pattern each time) took seconds. Only names that begin as a glob's literal
    start does are matched against it (sorted, found by bisection)."""

    def __init__(self, directory: Path) -> None:
        try:
            listed = os.listdir(directory)
        except OSError:  # not there (yet): nothing in it to write over
            listed = []
        self._names = sorted((os.path.normcase(name), name) for name in listed)
        self._keys = [key for key, _ in self._names]

    def __bool__(self) -> bool:
        return bool(self._names)

    def __getitem__(self, pattern: str) -> list[str]:
        """The names this glob (of one name, no separator) matches, as Path.glob matches it."""
        pattern = os.path.normcase(pattern)
        start = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
        found = []
        for key, name in self._names[bisect.bisect_left(self._keys, start) :]:
            if not key.startswith(start):
                break
            if fnmatch.fnmatchcase(key, pattern):
                found.append(name)
        return found


def refuse_existing_files(
    jobs: list[PreparedJob],
    directory: Path,
    template: NameTemplate | None = None,
    date: str = "",
) -> None:
    """Files a job would write that exist already (named after the job, or by a template, as
    far as its names are known before its task is): refused before anything is paid for
    (downloading over them is refused anyway, after the task ran)."""
    clashes = []
    names = _Listing(directory)
    if names:
        for job in jobs:
            found = {
                name for pattern in _planned_globs(job, template, date) for name in names[pattern]
            }
            clashes += [f"line {job.line}: {directory / name} exists" for name in sorted(found)]
    if clashes:
        raise _refused(
            clashes,
            f"{len(clashes)} output file{'s' if len(clashes) > 1 else ''} exist already",
            "--resume takes the batch up where it was (no line is paid twice); --force "
            "(overwriting) or another -o submits every line again, done ones included",
        )


@contextmanager
def batch_lock(text: str, where: str, shard: tuple[int, int] | None = None) -> Iterator[None]:
    """One run of a batch (of one shard of it) at a time: two runs of the same jobs (the same
    file, or its copy) would each pay for every job that the other has not recorded yet. A
    second run is refused; other shards of the file, whose lines are others, run alongside."""
    import hashlib

    from siray_cli.storage.locks import LockBusy, flock

    part = "" if shard is None else f"\0shard {shard[0]}/{shard[1]}"
    digest = hashlib.sha256((text + part).encode()).hexdigest()[:24]
    try:
        with flock(f"batch-{digest}.lock", wait=False, write_pid=True):
            yield
    except LockBusy as busy:
        raise BatchBusyError(
            f"another siray is running the batch in {where} (pid {busy.holder or '?'}); "
            "nothing was submitted",
            hint="wait for it to end, then run again with --resume",
        ) from None
