"""The HTTP transport every provider and download shares: httpx with retries, pacing, proxies
and a --debug trace.

Retries follow an httpx-retries Retry, made when a first attempt fails: GETs ride through
connection errors, timeouts, truncated bodies, 429 and 502/503/504 with jittered exponential
backoff, honouring a capped Retry-After. The create POST is retried only when it certainly never
reached the server (the connection was never made) or on 429; anything else could start a
second paid task. Whatever the policy, a request and all its retries end within one overall
deadline (REQUEST_BUDGET read timeouts): six attempts of a full read timeout each would keep a
look waiting for minutes.
"""

from siray_cli.transport.bounds import (
    DEFAULT_BACKOFF,
    DEFAULT_TIMEOUT,
    JSON_BODY_LIMIT,
    MAX_RETRY_AFTER,
    REQUEST_BUDGET,
    USER_AGENT,
    AnswerTooLarge,
    AnswerTooSlow,
    BadBody,
    Trace,
    deadline,
    timeout_of,
    timeouts,
)
from siray_cli.transport.client import build_http_client, tls_context
from siray_cli.transport.retries import (
    LOCAL_REFUSED_GRACE,
    NothingListening,
    create_retry,
    describe,
    read_retry,
)

__all__ = [
    "DEFAULT_BACKOFF",
    "DEFAULT_TIMEOUT",
    "JSON_BODY_LIMIT",
    "LOCAL_REFUSED_GRACE",
    "MAX_RETRY_AFTER",
    "REQUEST_BUDGET",
    "USER_AGENT",
    "AnswerTooLarge",
    "AnswerTooSlow",
    "BadBody",
    "NothingListening",
    "Trace",
    "build_http_client",
    "create_retry",
    "deadline",
    "describe",
    "read_retry",
    "timeout_of",
    "timeouts",
    "tls_context",
]
