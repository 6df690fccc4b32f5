"""The models the emulator knows, with JSON Schemas built from API.md's per-model facts."""

from __future__ import annotations

import json
from typing import Any

SEED = {
    "type": "integer",
    "minimum": -1,
    "maximum": 9999999999,
    "default": -1,
    "description": "Random seed; -1 picks one.",
}
PROMPT = {"type": "string", "minLength": 1, "description": "What to generate."}
IMAGE = {"type": "string", "description": "Input image: a public URL or a data URL."}
FIXED_8_SECONDS = {
    "type": "integer",
    "enum": [8],
    "default": 8,
    "description": "Length in seconds.",
}


def _schema(required: list[str], **properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"prompt": PROMPT, **properties},
        "required": ["prompt", *required],
    }


MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "alibaba/z-image-turbo-t2i": (
        "text-to-image",
        _schema(
            ["size"],
            size={
                "type": "string",
                "enum": ["1024x768", "768x1024", "1024x1024"],
                "description": "Output size in pixels.",
            },
            seed=SEED,
        ),
    ),
    "bytedance/seedream-3.0-t2i": (
        "text-to-image",
        _schema(
            [],
            size={
                "type": "string",
                "default": "2048x2048",
                "description": "Output size in pixels.",
                "enum": [
                    "2048x2048",
                    "2304x1728",
                    "1728x2304",
                    "2560x1440",
                    "1440x2560",
                    "2496x1664",
                    "1664x2496",
                    "3024x1296",
                ],
            },
        ),
    ),
    "black-forest-labs/flux-kontext-i2i-max": ("image-to-image", _schema(["image"], image=IMAGE)),
    "black-forest-labs/flux-1.1-pro-ultra-i2i": ("image-to-image", _schema(["image"], image=IMAGE)),
    "ideogram/ideogram-v3-turbo-i2i": (
        "image-to-image",
        _schema(
            ["aspect_ratio", "image"],
            aspect_ratio={"type": "string", "enum": ["1:1", "16:9", "9:16", "4:3", "3:4"]},
            image=IMAGE,
            mask={"type": "string", "description": "Mask image: a public URL or a data URL."},
            seed=SEED,
            style={"type": "string", "enum": ["Auto", "General", "Realistic", "Design"]},
            style_reference_images={
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": 4,
            },
        ),
    ),
    "google/gemini-2.5-flash-image-t2i": ("text-to-image", _schema([])),
    "google/gemini-2.5-flash-image-i2i": ("image-to-image", _schema(["image"], image=IMAGE)),
    "google/veo-3.1-t2v": (
        "text-to-video",
        _schema(
            [],
            duration=FIXED_8_SECONDS,
        ),
    ),
    "google/veo-3-fast-t2v": (
        "text-to-video",
        _schema(
            [],
            duration=FIXED_8_SECONDS,
        ),
    ),
    "alibaba/wan-2.6-i2v": (
        "image-to-video",
        _schema(
            ["image"],
            image=IMAGE,
            duration={
                "type": "integer",
                "enum": [5, 10, 15],
                "default": 5,
                "description": "Length in seconds.",
            },
        ),
    ),
    "kuaishou/kling-2.6-pro-t2v": (
        "text-to-video",
        _schema(
            [],
            aspect_ratio={"type": "string", "enum": ["16:9", "9:16", "1:1"], "default": "16:9"},
            duration={
                "type": "integer",
                "enum": [5, 10],
                "default": 5,
                "description": "Length in seconds.",
            },
        ),
    ),
}

VIDEO_TAGS = frozenset({"text-to-video", "image-to-video", "video"})
IMAGE_FIELDS = ("image", "mask")


Models = dict[str, tuple[str, dict[str, Any]]]


def catalogue_document(models: Models) -> dict[str, Any]:
    """The gateway's `GET /api/model-verse/models` answer (schemas serialized as strings)."""
    return {
        "data": [
            {"model_name": name, "tag": tag, "model_extend_info": json.dumps(schema)}
            for name, (tag, schema) in models.items()
        ]
    }


def load_models(text: str) -> Models:
    """Extra models in the gateway's own format, `{"data": [{"model_name", "tag",
    "model_extend_info"}]}` (the schema as an object or a string), for `siray emulator --models`."""
    document = json.loads(text)
    entries = document.get("data") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ValueError('expected {"data": [...]} with one object per model')
    models: Models = {}
    for entry in entries:
        name, tag = entry.get("model_name"), entry.get("tag", "")
        schema = entry.get("model_extend_info", {})
        if isinstance(schema, str):
            schema = json.loads(schema)
        if not isinstance(name, str) or not isinstance(schema, dict):
            raise ValueError(f"bad model entry: {entry!r:.80}")
        schema.setdefault("type", "object")
        models[name] = (str(tag), schema)
    return models
