"""Secrets scrubbed from every line siray writes: API keys, the secret of a Higgsfield id:secret
pair, temporary S3 credentials. A secret is found whole or in pieces of PARTIAL characters or
more (a server or proxy that echoes a key may cut it), before a message is cut short."""

from __future__ import annotations

REDACTED = "***"
PARTIAL = 8  # the shortest piece of a secret that is scrubbed on its own


class _Pieces:
    """A secret, and every prefix and suffix of it of PARTIAL characters or more (a server or
    proxy that echoes a key may cut it). Each prefix starts with the secret's first PARTIAL
    characters and each suffix ends with its last ones, so finding those anchors and growing each
    match as far as the secret allows finds every piece, in time linear in the secret's length;
    a regular expression of every piece would grow with its square (a temporary S3 token of a
    few hundred characters made one of over 100,000, compiled at each upload)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.head = secret[:PARTIAL]
        self.tail = secret[-PARTIAL:]

    def spans(self, text: str) -> list[tuple[int, int]]:
        secret, found = self.secret, []
        at = text.find(self.head)
        while at != -1:
            end = at + PARTIAL
            while end < len(text) and end - at < len(secret) and text[end] == secret[end - at]:
                end += 1
            found.append((at, end))
            at = text.find(self.head, at + 1)
        at = text.find(self.tail)
        while at != -1:
            end, start = at + PARTIAL, at
            while (
                start > 0
                and end - start < len(secret)
                and (text[start - 1] == secret[len(secret) - (end - start) - 1])
            ):
                start -= 1
            found.append((start, end))
            at = text.find(self.tail, at + 1)
        return found

    def scrub(self, text: str) -> str:
        if len(self.secret) <= PARTIAL:
            return text.replace(self.secret, REDACTED)
        spans = sorted(self.spans(text))
        if not spans:
            return text
        pieces, last = [], 0
        for start, end in spans:
            if start < last:  # overlaps the span before: one *** covers both
                last = max(last, end)
                continue
            pieces += [text[last:start], REDACTED]
            last = end
        pieces.append(text[last:])
        return "".join(pieces)


class _Whole:
    """A secret scrubbed only as a whole (the id:secret credential, whose id may show)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def scrub(self, text: str) -> str:
        return text.replace(self.secret, REDACTED)


class Secrets:
    """The secrets of one invocation, and the scrubbing of text with them."""

    def __init__(self) -> None:
        self._secrets: dict[str, _Pieces | _Whole] = {}

    def add(self, secret: str | None) -> None:
        """A secret never shown. Of an id:secret credential the id may be shown: the whole is
        scrubbed as a whole, and the secret part by its pieces too."""
        if not secret or len(secret) < 4 or secret in self._secrets:
            return
        if ":" in secret:
            private = secret.partition(":")[2]
            self._secrets[secret] = _Whole(secret)
            if len(private) >= 4 and private not in self._secrets:
                self._secrets[private] = _Pieces(private)  # all of it: a ':' in it is its own
            return
        self._secrets[secret] = _Pieces(secret)

    def scrub(self, text: str) -> str:
        for secret in self._secrets.values():
            text = secret.scrub(text)
        return text
