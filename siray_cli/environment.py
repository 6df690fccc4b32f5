"""The process siray runs in, as one value (httpie's `Environment`): its standard streams, whether
each is a terminal, and its environment variables. Everything below the commands gets them from
here instead of `sys` and `os.environ`, so a test builds one (text streams, a dict of variables,
terminals or not) where a process is not the point."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import BinaryIO, TextIO


class Environment:
    """Streams and variables not given are the process's own, looked up at each use: test
    runners (click's CliRunner) swap sys.stdin, sys.stdout and sys.stderr while siray runs."""

    def __init__(
        self,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        variables: Mapping[str, str] | None = None,
        terminals: Mapping[str, bool] | None = None,
    ) -> None:
        self._stdin, self._stdout, self._stderr = stdin, stdout, stderr
        self._variables = variables
        self._terminals = dict(terminals or {})  # "stdin"/"stdout"/"stderr" -> is a terminal

    @property
    def stdin(self) -> TextIO:
        return self._stdin if self._stdin is not None else sys.stdin

    @property
    def stdin_bytes(self) -> BinaryIO:
        """Standard input as bytes (an upload of `-`)."""
        buffer = getattr(self.stdin, "buffer", None)
        if buffer is None:  # a text stream given by a test: its text, encoded
            import io

            return io.BytesIO(self.stdin.read().encode())
        return buffer  # type: ignore[no-any-return]

    @property
    def stdout(self) -> TextIO:
        return self._stdout if self._stdout is not None else sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._stderr if self._stderr is not None else sys.stderr

    @property
    def variables(self) -> Mapping[str, str]:
        return self._variables if self._variables is not None else os.environ

    def isatty(self, name: str) -> bool:
        """Whether the stream `name` ("stdin", "stdout", "stderr") is a terminal."""
        if name in self._terminals:
            return self._terminals[name]
        stream = getattr(self, name)
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):
            return False
