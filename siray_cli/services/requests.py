"""Building and checking a request before anything is paid for: the prompt and inputs as typed,
the model's schema from the catalogue, then the local files they name, uploaded (or inlined) only
once every check has passed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siray_cli.domain import ModelInfo, TaskKind, kind_from_model_name
from siray_cli.errors import UsageError
from siray_cli.providers import command_prefix
from siray_cli.services import inputs
from siray_cli.services.values import UPLOAD_PLACEHOLDER, InputItem, is_remote

if TYPE_CHECKING:
    from siray_cli.providers.base import Provider
    from siray_cli.services.session import Session
    from siray_cli.services.uploads import Transfers
    from siray_cli.storage.catalogue import Catalogue


@dataclass
class RequestSpec:
    """What the user asked for on the command line."""

    model: str
    prompt: str | None = None
    prompt_opt: str | None = None
    prompt_file: str | None = None
    input_items: list[str] = field(default_factory=list)
    input_json: str | None = None
    image: str | None = None
    kind: str | None = None
    validate: bool = True
    inline: bool = False
    webhook: str | None = None
    base: dict[str, Any] | None = None  # the body to start from, without --input-json (a rerun's)
    # a rerun on another model: the inputs of `base` that model does not take are left out, said
    fit_base: bool = False
    command: str = "run"  # the siray command asked, as hints spell it


@dataclass
class Request:
    kind: TaskKind
    body: dict[str, Any]
    webhook: str | None = None
    key: str | None = None  # what identifies the job in the history (ledger.fingerprint)
    files: LocalFiles | None = None  # the local files the body names (placeholders until sent)


def catalogue(session: Session, provider: Provider, *, refresh: bool = False) -> Catalogue:
    from siray_cli.storage.catalogue import CatalogueStore, cache_path

    store = CatalogueStore(
        cache_path(provider.catalogue_url),
        provider.list_models,
        warn=session.notices.warn,
        ttl=session.settings.catalogue_ttl,
    )
    return store.load(refresh=refresh)


def model_info(
    session: Session, provider: Provider, name: str, *, refresh: bool = False
) -> ModelInfo:
    """The model's catalogue entry; a model missing from the cache refreshes it once."""
    from siray_cli.storage.catalogue import UNREACHABLE

    try:
        found = catalogue(session, provider, refresh=refresh)
    except UNREACHABLE as exc:
        exc.hint = (exc.hint + "; " if exc.hint else "") + (
            "or pass --no-validate to send the inputs unchecked"
        )
        raise
    info = found.get(name)
    if info is None and not found.fresh:
        found = catalogue(session, provider, refresh=True)
        info = found.get(name)
    if info is None:
        raise found.unknown_model(name)
    return info


def build_request(
    session: Session, provider: Provider, spec: RequestSpec, transfers: Transfers
) -> Request:
    """Everything `generate` and `run` send, checked before anything is paid for (see
    check_request); local files are uploaded only once all of that passed."""
    request = check_request(session, provider, spec)
    assert request.files is not None
    request.body = request.files.resolve(provider, request.body, transfers)
    return request


def check_request(session: Session, provider: Provider, spec: RequestSpec) -> Request:
    """The request checked, nothing uploaded: the local inputs first, then (unless
    --no-validate) the model's schema from the catalogue. Local files stay placeholders in the
    body (`files` uploads them, or describes them for a --dry-run); --inline ones are data URLs
    already."""
    stdin = inputs.StdinOnce(session.environment.stdin)
    usage = f"{command_prefix(provider.name)} {spec.command} MODEL"
    text = inputs.resolve_prompt(spec.prompt, spec.prompt_opt, spec.prompt_file, stdin, usage)
    base = inputs.load_json_body(spec.input_json, stdin) if spec.input_json else {}
    base = {**(spec.base or {}), **base}
    items = [inputs.parse_input(item) for item in spec.input_items]
    if spec.webhook is not None and not provider.capabilities.supports_webhook:
        raise UsageError(f"{provider.name} has no webhooks", hint="leave out --webhook")
    files = LocalFiles(session, inline=spec.inline)
    if spec.image is not None:
        base[provider.image_field] = files.add("--image", spec.image)
    info = checked_model(session, provider, spec.model) if spec.validate else None
    if spec.fit_base and spec.base and info is not None:
        unknown = [key for key in spec.base if key not in info.properties and key in base]
        for key in unknown:
            del base[key]
        if unknown:
            session.notices.info(
                f"note: {spec.model} takes no {', '.join(unknown)}: left out of the request"
            )
    body = build_body(
        spec.model,
        text,
        base,
        items,
        info=info,
        local_file=files.add,
        command=command_prefix(provider.name),
        verb=spec.command,
    )
    kind = pick_kind(spec.model, spec.kind, info)
    from siray_cli.services.ledger import fingerprint

    key = fingerprint(kind, files.identity(body))
    return Request(kind, body, spec.webhook, key, files)


def checked_model(session: Session, provider: Provider, name: str) -> ModelInfo | None:
    """The model's catalogue entry, to check a request against. A provider whose catalogue is
    open (siray knows only some of its models) sends an unknown one as given, with a note."""
    try:
        return model_info(session, provider, name)
    except UsageError:
        if not provider.capabilities.open_catalogue:
            raise
        import difflib

        from siray_cli.providers import built_in_models

        close = difflib.get_close_matches(name, list(built_in_models(provider.name)), n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        session.notices.info(
            f"note: {name} is not one of the {provider.name} applications siray knows; "
            f"it is sent as given{guess}"
        )
        return None


def build_body(
    model: str,
    prompt: str | None,
    base: dict[str, Any],
    items: Sequence[InputItem],
    *,
    info: ModelInfo | None = None,
    local_file: Callable[[str, str], str] | None = None,
    command: str = "siray",
    verb: str = "run",
) -> dict[str, Any]:
    """The request body: the --input-json base, then the -i inputs (coerced by the model's schema
    when there is one), then model and prompt; validated against the schema when there is one."""
    from siray_cli.services import validation

    body = dict(base)
    if local_file is not None:
        items = inputs.resolve_at_files(items, local_file)
        if info is not None:
            body = validation.local_files_in(body, info, local_file)
    untyped: dict[str, str] = {}
    if info is None:
        for item in items:
            body[item.key] = item.value()
    else:
        typed, untyped = validation.coerce_each(items, info, local_file)
        body.update(typed)
    body["model"] = model
    if prompt is not None:
        body["prompt"] = prompt
    if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
        raise UsageError(
            "no prompt given",
            hint=f'give one: {command} {verb} MODEL "a lighthouse at dusk" '
            "(or -p, --prompt-file FILE|-)",
        )
    if info is not None:
        validation.apply_defaults(body, info)
        validation.validate_body(body, info, untyped, command=command)
    return body


def pick_kind(model: str, kind: str | None, info: ModelInfo | None = None) -> TaskKind:
    """--kind, else the catalogue's tag, else a guess from the model's name."""
    if kind:
        return TaskKind(kind)
    if info is not None and info.tag:
        return info.kind
    return kind_from_model_name(model)


class LocalFiles:
    """Local files named in the inputs: checked at once, and uploaded (or, with --inline, sent
    as data URLs) only after every input has passed its checks; each file once per provider,
    through the provider of the request that names it (one provider's storage is not
    another's)."""

    def __init__(self, session: Session, *, inline: bool) -> None:
        self._session = session
        self._inline = inline
        # one placeholder per mention: a batch's --resume keys are made from bodies that still
        # hold them, so two lines naming the same file must not become the same body
        self._pending: dict[str, Path] = {}  # placeholder -> the file, resolved
        self._given: dict[Path, Path] = {}  # the file, resolved -> as the user named it
        self._uploaded: dict[str, dict[Path, str]] = {}  # provider name -> file -> URL
        self._inlined: dict[str, Path] = {}  # data URL -> the file, as the user named it

    def add(self, key: str, value: str) -> str:
        if is_remote(value):
            return value
        path = Path(value).expanduser()
        if self._inline:
            url = inline_file(self._session, key, path)
            self._inlined[url] = path
            return url
        problem = inputs.unreadable(path)
        if problem:
            raise UsageError(f"{key}: {problem}", hint="give a URL or an existing file")
        placeholder = f"{UPLOAD_PLACEHOLDER}{len(self._pending)}/{path.name}"
        self._pending[placeholder] = path.resolve()
        self._given.setdefault(path.resolve(), path)
        return placeholder

    def identity(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as it identifies a job: each local file by its path, size and time of last
        change (two files of one name are not one job; the same file edited is another)."""
        if not self._pending:
            return body

        def named(text: str) -> str:
            path = self._pending.get(text)
            if path is None:
                return text
            try:
                found = path.stat()
            except OSError:
                return f"file:{path}"
            return f"file:{path}#{found.st_size}:{found.st_mtime_ns}"

        replaced: dict[str, Any] = _replace(body, named)
        return replaced

    def describe(self, body: dict[str, Any]) -> dict[str, Any]:
        """The body as a --dry-run shows it: each local file by the path given and its size,
        with what would be done with it, in place of its URL (never uploaded) or data URL."""
        if not self._pending and not self._inlined:
            return body

        def shown(text: str) -> str:
            path = self._pending.get(text)
            if path is not None:
                return f"@{self._given[path]} (would be uploaded, {_size(path)})"
            given = self._inlined.get(text)
            if given is not None:
                return f"@{given} (would be sent inline as a data URL, {_size(given)})"
            return text

        replaced: dict[str, Any] = _replace(body, shown)
        return replaced

    def upload(
        self, provider: Provider, bodies: Sequence[dict[str, Any]], transfers: Transfers
    ) -> None:
        """Upload through `provider`, together and once each, the files these bodies name that
        it does not have yet."""
        if not self._pending:  # (a batch without local files: nothing to look for)
            return
        done = self._uploaded.setdefault(provider.name, {})
        named: set[str] = set()
        for body in bodies:
            _collect(body, self._pending, named)
        files = dict.fromkeys(self._pending[k] for k in sorted(named))  # in order, once each
        waiting = [path for path in files if path not in done]
        if waiting:
            from siray_cli.services.uploads import upload_files
            from siray_cli.storage.sources import check_sources

            sources = check_sources(
                [str(self._given[p]) for p in waiting],
                name=None,
                content_type=None,
                max_bytes=2**62,
            )
            uploaded = upload_files(self._session, provider, sources, transfers)
            done.update(zip(waiting, (u.url for u in uploaded), strict=True))

    def resolve(
        self, provider: Provider, body: dict[str, Any], transfers: Transfers
    ) -> dict[str, Any]:
        """The body with every placeholder replaced by its file's URL on `provider` (uploading
        the files it does not have yet)."""
        if not self._pending:
            return body
        self.upload(provider, [body], transfers)
        done = self._uploaded[provider.name]

        def url(text: str) -> str:
            path = self._pending.get(text)
            return text if path is None else done[path]

        replaced: dict[str, Any] = _replace(body, url)
        return replaced


def _size(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return "size unknown"
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KiB"
    return f"{size / 1048576:.1f} MiB"


def _collect(value: Any, pending: dict[str, Path], found: set[str]) -> None:
    if isinstance(value, str):
        if value in pending:
            found.add(value)
    elif isinstance(value, list):
        for item in value:
            _collect(item, pending, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, pending, found)


def _replace(value: Any, url: Callable[[str], str]) -> Any:
    """`value` with every string passed through `url` (a placeholder becomes its file's URL)."""
    if isinstance(value, str):
        return url(value)
    if isinstance(value, list):
        return [_replace(v, url) for v in value]
    if isinstance(value, dict):
        return {k: _replace(v, url) for k, v in value.items()}
    return value


def inline_file(session: Session, key: str, path: Path) -> str:
    """A local file as a data URL, with a warning when it is large."""
    try:
        url, size = inputs.data_url(path)
    except UsageError as exc:
        raise UsageError(f"{key}: {exc.message}", hint="give a URL or an existing file") from None
    if size > inputs.INLINE_WARN_BYTES:
        session.notices.warn(
            f"{path} is {size / 1048576:.1f} MiB; it is sent inline as a data URL, "
            "which some models reject above a few MiB (leave out --inline to upload it)"
        )
    return url
