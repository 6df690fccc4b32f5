"""Exit codes, the CLI-level errors, and the one table that turns an exception into a message."""

from __future__ import annotations

import enum

from siray_cli.api import errors as api


class ExitCode(enum.IntEnum):
    OK = 0
    TASK_FAILED = 1  # the task failed or was cancelled
    USAGE = 2  # usage or invalid input
    AUTH = 3  # authentication or permission (401, 403), or no key at all
    TIMEOUT = 4  # gave up waiting; the task may still finish
    API = 5  # API, network or server error
    INTERRUPTED = 130  # Ctrl-C


EXIT_CODE_HELP: list[tuple[ExitCode, str]] = [
    (ExitCode.OK, "success"),
    (ExitCode.TASK_FAILED, "the task failed or was cancelled"),
    (ExitCode.USAGE, "usage error or invalid input"),
    (ExitCode.AUTH, "authentication or permission error (missing key, HTTP 401, 403)"),
    (ExitCode.TIMEOUT, "timed out waiting; the task may still finish (resume with --wait)"),
    (ExitCode.API, "API, network or server error"),
    (ExitCode.INTERRUPTED, "interrupted (Ctrl-C)"),
]


class TaskFailedError(api.SirayError):
    error_type = "task_failed"


class TaskCancelledError(api.SirayError):
    error_type = "task_cancelled"


class WaitTimeoutError(api.SirayError):
    error_type = "timeout"


class DownloadError(api.SirayError):
    error_type = "download_error"


class ConfigError(api.SirayError):
    """The config file cannot be read or parsed; it is left untouched."""

    error_type = "config_error"


class Interrupted(api.SirayError):
    error_type = "interrupted"


# Most specific first: the first class the exception is an instance of decides.
_EXIT_CODES: list[tuple[type[api.SirayError], ExitCode]] = [
    (api.UsageError, ExitCode.USAGE),
    (ConfigError, ExitCode.USAGE),
    (api.BadRequestError, ExitCode.USAGE),
    (api.NotFoundError, ExitCode.USAGE),
    (api.MissingAPIKeyError, ExitCode.AUTH),
    (api.AuthenticationError, ExitCode.AUTH),
    (api.PermissionDeniedError, ExitCode.AUTH),
    (TaskFailedError, ExitCode.TASK_FAILED),
    (TaskCancelledError, ExitCode.TASK_FAILED),
    (WaitTimeoutError, ExitCode.TIMEOUT),
    (Interrupted, ExitCode.INTERRUPTED),
    (api.SirayError, ExitCode.API),
]


def exit_code_for(exc: api.SirayError) -> ExitCode:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return ExitCode.API
