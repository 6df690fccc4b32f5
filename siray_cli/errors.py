"""Every typed error, the exit codes, and the one table that turns an exception into a message,
a hint and an exit code (applied once, in `app.main`)."""

from __future__ import annotations

import enum


class SirayError(Exception):
    """Base of every error siray reports to the user as a one-line message. `records`, when a
    command sets them, are the JSON documents that tell it on stdout under --json, instead of
    the error object (a batch's typed records)."""

    error_type = "error"
    records: list[dict[str, object]] | None = None

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status_code: int | None = None,
        task_id: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status_code = status_code
        self.task_id = task_id
        self.code = code


class UsageError(SirayError):
    """The user's input is wrong (exit code 2)."""

    error_type = "usage_error"


class APIError(SirayError):
    """The server answered with an error status (or an unusable body)."""

    error_type = "api_error"


class BadRequestError(APIError):
    error_type = "bad_request"


class AuthenticationError(APIError):
    error_type = "authentication_error"


class PermissionDeniedError(APIError):
    error_type = "permission_denied"


class PaymentRequiredError(APIError):
    error_type = "payment_required"


class ConcurrencyLimitError(BadRequestError):
    """The account's limit of requests at once: nothing was created; submitting again later is
    safe (a batch holds back until one of its tasks ends)."""

    error_type = "concurrency_limit"


class IdempotencyConflictError(BadRequestError):
    """The Idempotency-Key was used before for a request with other parameters (a 422 that names
    no field): nothing was created now; the request made under that key stands."""

    error_type = "idempotency_conflict"


class CancelRefusedError(APIError):
    """The task has already started (or ended): it can no longer be cancelled."""

    error_type = "cancel_refused"


class NotFoundError(APIError):
    error_type = "not_found"


class RateLimitError(APIError):
    error_type = "rate_limited"


class ServerError(APIError):
    error_type = "server_error"


class ProtocolError(APIError):
    """A 2xx answer whose body siray cannot use (not JSON, no task id, ...)."""

    error_type = "protocol_error"


class CancelUnsupportedError(APIError):
    error_type = "cancel_unsupported"


class NetworkError(SirayError):
    """The request never got an answer: DNS, refused connection, timeout, dropped connection."""

    error_type = "network_error"


class AmbiguousSubmitError(SirayError):
    """The create request may have reached the server, but no answer came back.

    siray never retries such a request: a retry could start a second paid task.
    """

    error_type = "submit_uncertain"


class BatchBusyError(SirayError):
    """Another siray process is running the same batch."""

    error_type = "batch_busy"


class MissingAPIKeyError(SirayError):
    error_type = "missing_api_key"


class UnusableAPIKeyError(MissingAPIKeyError):
    """The key in effect holds characters no HTTP header can carry."""

    error_type = "unusable_api_key"


def error_for_status(status_code: int) -> type[APIError]:
    """The exception class for an HTTP error status."""
    if status_code in {400, 422}:
        return BadRequestError
    if status_code == 401:
        return AuthenticationError
    if status_code == 402:
        return PaymentRequiredError
    if status_code == 403:
        return PermissionDeniedError
    if status_code == 404:
        return NotFoundError
    if status_code == 429:
        return RateLimitError
    if status_code >= 500:
        return ServerError
    return APIError


class ExitCode(enum.IntEnum):
    OK = 0
    TASK_FAILED = 1  # the task failed or was cancelled
    USAGE = 2  # usage or invalid input
    AUTH = 3  # authentication or permission (401, 403), or no key at all
    TIMEOUT = 4  # gave up waiting; the task may still finish
    API = 5  # API, network or server error
    HANGUP = 129  # SIGHUP (the terminal closed)
    INTERRUPTED = 130  # Ctrl-C
    TERMINATED = 143  # SIGTERM (a CI runner stopping the job)


EXIT_CODE_HELP: list[tuple[ExitCode, str]] = [
    (ExitCode.OK, "success"),
    (
        ExitCode.TASK_FAILED,
        "the task failed or was cancelled (run, status --wait), or was not sent: it would pass "
        "--max-cost or --max-tasks",
    ),
    (
        ExitCode.USAGE,
        "usage error or invalid input (including the server's 400 and 404, and no emulator "
        "running for `siray emulator status`)",
    ),
    (ExitCode.AUTH, "authentication or permission: no key, HTTP 401 or 403"),
    (
        ExitCode.TIMEOUT,
        "timed out waiting; the task may still finish (siray status ID --wait resumes)",
    ),
    (
        ExitCode.API,
        "API, network or server error (including a failed download, and a task that has "
        "started and can no longer be cancelled)",
    ),
    (ExitCode.HANGUP, "hung up (SIGHUP, the terminal closed), handled as Ctrl-C"),
    (ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
    (ExitCode.TERMINATED, "terminated (SIGTERM, as CI runners stop jobs), handled as Ctrl-C"),
]


class TaskFailedError(SirayError):
    error_type = "task_failed"


class TaskCancelledError(SirayError):
    error_type = "task_cancelled"


class WaitTimeoutError(SirayError):
    error_type = "timeout"


class OverBudgetError(SirayError):
    """A create not sent: it would pass --max-cost or --max-tasks (exit 1: nothing was paid)."""

    error_type = "over_budget"


class DownloadError(SirayError):
    error_type = "download_error"


class UploadError(SirayError):
    error_type = "upload_error"


class ConfigError(SirayError):
    """The config file cannot be read or parsed; it is left untouched."""

    error_type = "config_error"


class BadLinesError(UsageError):
    """Lines of a batch that cannot be submitted: `lines` holds (line number, why) for each."""

    def __init__(
        self, message: str, lines: list[tuple[int | None, str]], *, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.lines = lines


class Interrupted(SirayError):
    error_type = "interrupted"


class BatchInterrupted(Interrupted):
    """A batch stopped by a signal: the tasks it leaves running, how many of its submits got no
    answer, and the command that takes it up again."""

    def __init__(
        self, message: str, *, hint: str, task_ids: list[str], unanswered: int, resume: str
    ) -> None:
        super().__init__(message, hint=hint)
        self.task_ids = task_ids
        self.unanswered = unanswered
        self.resume = resume
        self.outcome: object | None = None  # what the batch got to (a BatchOutcome), if known


class NotCancelledError(UsageError):
    """A cancel of a task that had already ended: nothing was cancelled."""

    error_type = "not_cancelled"


class EmulatorNotRunningError(SirayError):
    """`siray emulator status` (and the like) found no background emulator running: not found,
    as a 404 is (exit 2)."""

    error_type = "not_running"


class EmulatorStartError(SirayError):
    """A background emulator did not start, or did not answer in time."""

    error_type = "emulator_error"


class InternalError(SirayError):
    """A bug: said in one line, with the traceback only under --debug."""

    error_type = "internal_error"


# Most specific first: the first class the exception is an instance of decides.
_EXIT_CODES: list[tuple[type[SirayError], ExitCode]] = [
    (UsageError, ExitCode.USAGE),
    (BatchBusyError, ExitCode.USAGE),
    (ConfigError, ExitCode.USAGE),
    (BadRequestError, ExitCode.USAGE),
    (NotFoundError, ExitCode.USAGE),
    (EmulatorNotRunningError, ExitCode.USAGE),
    (MissingAPIKeyError, ExitCode.AUTH),
    (AuthenticationError, ExitCode.AUTH),
    (PermissionDeniedError, ExitCode.AUTH),
    (TaskFailedError, ExitCode.TASK_FAILED),
    (TaskCancelledError, ExitCode.TASK_FAILED),
    (OverBudgetError, ExitCode.TASK_FAILED),
    (WaitTimeoutError, ExitCode.TIMEOUT),
    (Interrupted, ExitCode.INTERRUPTED),
    (SirayError, ExitCode.API),
]


def exit_code_for(exc: SirayError) -> ExitCode:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return ExitCode.API
