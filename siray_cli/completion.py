"""Dynamic shell completion: model names from the cached catalogue, task ids from the history.

Completion runs on every Tab press, so it reads local files only (never the network), answers in
milliseconds, and swallows every error: a shell must never see a traceback.
"""

from __future__ import annotations


def complete_model(incomplete: str) -> list[tuple[str, str]]:
    try:
        import json

        from siray_cli.storage.catalogue import cache_dir

        names: dict[str, str] = {}
        for path in cache_dir().glob("models-*.json"):
            for entry in json.loads(path.read_text(encoding="utf-8")).get("models", []):
                name = entry.get("name")
                if isinstance(name, str) and name.startswith(incomplete):
                    names[name] = str(entry.get("tag", ""))
        return sorted(names.items())
    except Exception:
        return []


def complete_task_id(incomplete: str) -> list[tuple[str, str]]:
    try:
        import sqlite3

        from siray_cli.storage.history import DB_NAME, data_dir

        path = data_dir() / DB_NAME
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.1) as db:
            rows = db.execute(
                "SELECT task_id, model, status FROM tasks WHERE task_id LIKE ? "
                "ORDER BY submitted_at DESC LIMIT 50",
                (incomplete.replace("%", "") + "%",),
            ).fetchall()
        return [(task_id, f"{model} {status}") for task_id, model, status in rows if task_id]
    except Exception:
        return []
