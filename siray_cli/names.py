"""File names made from text siray does not control (task ids from a server, job names from a
batch file): they can never leave their directory and fit any file system."""

from __future__ import annotations

import hashlib
import re

UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")
NAME_LIMIT = 120  # characters of a file name made from a task id or a job name


def safe_name(text: str) -> str:
    """A file name that cannot leave its directory (no separators, no leading dots) and fits any
    file system: a long one is cut, with a digest of the whole so two long names stay apart."""
    name = UNSAFE.sub("_", text).lstrip(".") or "task"
    if len(name) <= NAME_LIMIT:
        return name
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{name[: NAME_LIMIT - 13]}-{digest}"


# --name-template and the name_template setting -------------------------------------------------

TEMPLATE_FIELDS = ("task_id", "name", "n", "ext", "model", "line", "date")
FIELD_LIMIT = 80  # characters of one field's value in a file name
FILE_LIMIT = 200  # characters of a whole file name made from a template (file systems: 255 bytes)
SUFFIX_LIMIT = 16  # an extension longer than this is no extension worth keeping whole


def _cut(text: str, whole: str, limit: int) -> str:
    """`text` in `limit` characters, with a digest of `whole` so two long texts stay apart."""
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(whole.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{text[: limit - 13]}-{digest}"


def field_text(value: str) -> str:
    """One field's value as a piece of a file name: nothing but letters, digits, `_`, `-` and
    `.` (so no separator, no NUL, nothing a shell or a file system reads), and not too long."""
    return _cut(UNSAFE.sub("_", value), value, FIELD_LIMIT)


def with_index(name: str, ext: str, index: str) -> str:
    """`name` with `_<index>` added before its extension `ext` (at its end if it has none)."""
    if ext and name.endswith(f".{ext}"):
        return f"{name[: -len(ext) - 1]}_{index}.{ext}"
    return f"{name}_{index}"


class NameTemplate:
    """A template of the names of saved files, such as `{name}_{n}.{ext}`: fields in braces
    (TEMPLATE_FIELDS), each filled with its value made safe (field_text), in literal text that
    names a file, not a path. Without `{ext}`, the name gets `.<ext>` at its end; without
    `{n}`, the outputs of a task that made several get `_<n>` before their extension. Whatever
    the values, the name stays in its directory: no separator, no leading dot, not too long."""

    def __init__(self, text: str) -> None:
        import string

        fields = ", ".join(f"{{{name}}}" for name in TEMPLATE_FIELDS)
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError:
            raise ValueError("has an unmatched { or } (write {{ or }} for a brace)") from None
        parts: list[tuple[str, str | None]] = []
        for literal, field, spec, conversion in parsed:
            if any(ch in literal for ch in "/\\\0"):
                raise ValueError("names a file, not a path: no / or \\ (nor NUL)")
            if field is not None and field not in TEMPLATE_FIELDS:
                raise ValueError(f"has an unknown field {{{field}}} (fields: {fields})")
            if spec or conversion:
                raise ValueError(f"field {{{field}}} takes no format (write {{{field}}})")
            parts.append((UNSAFE.sub("_", literal), field))
        if text.startswith("."):
            raise ValueError("must not start with a dot (that names a hidden file)")
        self.fields = frozenset(field for _, field in parts if field is not None)
        if not self.fields:
            raise ValueError(f"has no field, so every file would get the same name ({fields})")
        self.text = text
        self._parts = parts

    def __str__(self) -> str:
        return self.text

    def _join(self, values: dict[str, str]) -> str:
        return "".join(literal + (values[field] if field else "") for literal, field in self._parts)

    def file_name(self, values: dict[str, str], *, several: bool) -> str:
        """The name of one output: `values` holds every field's text as it came (a server's,
        a batch file's), made safe here; `several`: its task made more than one output."""
        safe = {name: field_text(values.get(name, "")) for name in TEMPLATE_FIELDS}
        ext = safe["ext"]
        name = self._join(safe)
        if "ext" not in self.fields:
            name = f"{name}.{ext}"
        if several and "n" not in self.fields:
            name = with_index(name, ext, safe["n"])
        if name.startswith("."):  # fields that were empty: never a hidden file, never `..`
            name = "_" + name[1:]
        if len(name) > FILE_LIMIT:
            stem, dot, suffix = name.rpartition(".")
            if dot and stem and len(suffix) <= SUFFIX_LIMIT:
                name = f"{_cut(stem, name, FILE_LIMIT - len(suffix) - 1)}.{suffix}"
            else:
                name = _cut(name, name, FILE_LIMIT)
        return name or "task"

    def pattern(self, known: dict[str, str], unknown: str, index: str | None = None) -> str:
        """The name with the `known` fields filled in (made safe) and every other one, and the
        extension, as `unknown` (a glob's `*`), `{n}` as `index` if given: what a line's files
        will be called, before its task exists. Without `{n}`, its only output's name."""
        values = {
            name: field_text(known[name]) if name in known else unknown for name in TEMPLATE_FIELDS
        }
        if index is not None and "n" not in known:
            values["n"] = index
        name = self._join(values)
        if "ext" not in self.fields:
            name = f"{name}.{unknown}"
        return "_" + name[1:] if name.startswith(".") else name
