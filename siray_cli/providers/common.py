"""What both providers' HTTP code shares: reading a body as JSON, and saying why a request got
no answer."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from siray_cli import errors

if TYPE_CHECKING:
    import httpx


def json_body(response: httpx.Response) -> object:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise errors.ProtocolError(
            f"the server sent a response that is not JSON (HTTP {response.status_code})"
        ) from exc


def network_error(exc: Exception, what: str, url: str, setting: str) -> errors.NetworkError:
    """`what` got no answer from `url`; `setting` names the flag and variable that move it."""
    from siray_cli.transport import AnswerTooLarge, AnswerTooSlow

    if isinstance(exc, (AnswerTooSlow, AnswerTooLarge)):
        return errors.NetworkError(
            f"{what}: {exc} from {url}",
            hint="the server's answers are too slow or too large; try again later",
        )
    hint = f"check your network and {setting}"
    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        hint = (
            "the server's certificate is not trusted; if your own authority signs it, "
            "point SSL_CERT_FILE at that authority's certificate"
        )
    return errors.NetworkError(
        f"{what}: could not reach {url} ({type(exc).__name__}: {exc or 'no detail'})",
        hint=hint,
    )
