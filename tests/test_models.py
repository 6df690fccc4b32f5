"""`siray models` and schema-driven inputs: the catalogue cache, coercion, and messages a person
would write, all before a paid request is sent."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import (
    created,
    emulator_stats,
    last_body,
    run_in_terminal,
    siray_command,
    subprocess_env,
)
from hypothesis import given
from hypothesis import strategies as st

from siray_cli.domain import ModelInfo
from siray_cli.emulator.faults import Fault
from siray_cli.errors import UsageError
from siray_cli.services.inputs import parse_input
from siray_cli.services.validation import coerce_inputs, validate_body

CATALOGUE = "GET /api/model-verse/models"
IDEOGRAM = "ideogram/ideogram-v3-turbo-i2i"


def catalogue_requests(emu) -> int:
    return emulator_stats(emu)["requests"].get(CATALOGUE, 0)


def cache_file(home: Path) -> Path:
    (path,) = (home / "cache").glob("models-*.json")
    return path


def test_list_on_a_pipe_and_as_json(siray):
    result = siray("models", "list")
    assert result.exit_code == 0, result
    rows = {line.split("\t")[0]: line.split("\t") for line in result.lines}
    assert rows["alibaba/z-image-turbo-t2i"] == [
        "alibaba/z-image-turbo-t2i",
        "image",
        "text-to-image",
        "prompt,size",
    ]
    assert rows["alibaba/wan-2.6-i2v"][1:3] == ["video", "image-to-video"]
    videos = siray("models", "list", "--kind", "video", "--json").json()
    assert {m["kind"] for m in videos} == {"video"} and len(videos) == 4
    assert [m["name"] for m in siray("models", "list", "flux", "--json").json()] == [
        "black-forest-labs/flux-1.1-pro-ultra-i2i",
        "black-forest-labs/flux-kontext-i2i-max",
    ]


def test_list_and_show_on_a_terminal(emu):
    code, screen = run_in_terminal(siray_command("models", "list"), subprocess_env(emu))
    assert code == 0, screen
    assert "required inputs" in screen and "kuaishou/kling-2.6-pro-t2v" in screen
    code, screen = run_in_terminal(
        siray_command("models", "show", IDEOGRAM), subprocess_env(emu, COLUMNS="200")
    )
    assert code == 0, screen
    assert "one of Auto, General, Realistic, Design" in screen
    assert "-1 to 9999999999" in screen and "1-4 items" in screen
    assert (
        f"siray run {IDEOGRAM} 'a lighthouse at dusk' -i aspect_ratio=1:1 -i image=photo.png"
        in screen
    )


def test_show_on_a_pipe_and_as_json(siray):
    result = siray("models", "show", "alibaba/z-image-turbo-t2i")
    assert result.exit_code == 0, result
    rows = {line.split("\t")[0]: line.split("\t") for line in result.lines}
    assert rows["size"][:4] == [
        "size",
        "string",
        "required",
        "one of 1024x768, 768x1024, 1024x1024",
    ]
    assert rows["seed"][2:5] == ["optional", "-1 to 9999999999", "-1"]
    assert "example: siray run alibaba/z-image-turbo-t2i" in result.stderr
    document = siray("models", "show", "google/veo-3.1-t2v", "--json").json()
    assert document["kind"] == "video"
    assert {row["name"]: row["default"] for row in document["inputs"]}["duration"] == 8


def test_show_an_unknown_model_suggests_close_names(siray):
    result = siray("models", "show", "alibaba/z-image-turbo")
    assert result.exit_code == 2
    assert "did you mean alibaba/z-image-turbo-t2i" in result.stderr


def test_the_cache_is_used_then_expires_then_refreshes(siray, emu, isolated_environment):
    before = catalogue_requests(emu)
    siray("models", "list")
    siray("models", "list")
    siray("generate", "google/gemini-2.5-flash-image-t2i", "x")
    assert catalogue_requests(emu) == before + 1  # one fetch, then the cache
    path = cache_file(isolated_environment)
    document = json.loads(path.read_text())
    document["fetched_at"] = time.time() - 2 * 86400
    path.write_text(json.dumps(document))
    siray("models", "list")
    assert catalogue_requests(emu) == before + 2  # expired: fetched again
    siray("models", "list", "--refresh")
    assert catalogue_requests(emu) == before + 3
    siray("models", "list", env={"SIRAY_CATALOGUE_TTL": "0.001"})
    assert catalogue_requests(emu) == before + 4


def test_an_unreachable_gateway_falls_back_to_the_cache(siray, emu):
    assert siray("models", "list").exit_code == 0
    emu.state.faults.add(Fault(action="status", status=503, path="model-verse", count=0))
    result = siray("models", "list", "--refresh")
    assert result.exit_code == 0, result
    assert "warning: could not fetch the model catalogue" in result.stderr
    assert "using the copy cached" in result.stderr
    assert "alibaba/z-image-turbo-t2i" in result.stdout


def test_no_cache_and_no_gateway_fails_listing_but_not_generating(siray, emu):
    emu.state.faults.add(Fault(action="status", status=503, path="model-verse", count=0))
    assert siray("models", "list").exit_code == 5
    result = siray("generate", "google/gemini-2.5-flash-image-t2i", "x")
    assert result.exit_code == 5  # no silent skip: say so, and let --no-validate send it
    assert "model catalogue" in result.stderr
    assert (
        siray("generate", "google/gemini-2.5-flash-image-t2i", "x", "--no-validate").exit_code == 0
    )


def test_a_corrupt_cache_is_replaced_with_a_warning(siray, isolated_environment):
    siray("models", "list")
    path = cache_file(isolated_environment)
    path.write_text("{not json")
    result = siray("models", "list")
    assert result.exit_code == 0
    assert f"warning: the model catalogue cache {path} was corrupt" in result.stderr
    assert json.loads(path.read_text())["models"]


def test_inputs_are_coerced_by_the_schema(siray, emu):
    result = siray(
        "generate",
        IDEOGRAM,
        "poster",
        "-i",
        "aspect_ratio=16:9",
        "-i",
        "seed=42",
        "-i",
        "image=https://e.com/i.png",
        "-i",
        "style_reference_images=https://e.com/1.png",
        "-i",
        "style_reference_images=https://e.com/2.png",
    )
    assert result.exit_code == 0, result
    body = last_body(emu)
    assert body["seed"] == 42
    assert body["style_reference_images"] == ["https://e.com/1.png", "https://e.com/2.png"]
    listed = siray(
        "generate",
        IDEOGRAM,
        "p",
        "-i",
        "aspect_ratio=1:1",
        "-i",
        "image=https://e/i",
        "-i",
        'style_reference_images=["https://e/a", "https://e/b"]',
    )
    assert listed.exit_code == 0, listed
    assert last_body(emu)["style_reference_images"] == ["https://e/a", "https://e/b"]


def test_a_string_input_stays_a_string(siray):
    result = siray("generate", "alibaba/z-image-turbo-t2i", "x", "-i", "size=1024")
    assert result.exit_code == 2
    assert 'size: "1024" is not one of 1024x768, 768x1024, 1024x1024' in result.stderr


def test_local_files_in_image_fields_are_uploaded_or_inlined(siray, emu, tmp_path):
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    result = siray("generate", "google/gemini-2.5-flash-image-i2i", "edit", "-i", "image=in.png")
    assert result.exit_code == 0, result
    assert last_body(emu)["image"].startswith(f"{emu.url}/uploads/user/123/")
    inline = siray(
        "generate", "google/gemini-2.5-flash-image-i2i", "edit", "-i", "image=in.png", "--inline"
    )
    assert inline.exit_code == 0, inline
    assert last_body(emu)["image"].startswith("data:image/png;base64,")
    missing = siray("generate", "google/gemini-2.5-flash-image-i2i", "edit", "-i", "image=no.png")
    assert missing.exit_code == 2
    assert "image: image file no.png does not exist" in missing.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "aspect_ratio=16:10"], '"16:10" is not one of 1:1, 16:9, 9:16, 4:3, 3:4'),
        (["-i", "aspect_ratio=1:1", "-i", "style=auto"], 'did you mean "Auto"?'),
        (
            ["-i", "aspect_ratio=1:1", "-i", "seed=99999999999"],
            "seed: 99999999999 is above the maximum 9999999999",
        ),
        (["-i", "aspect_ratio=1:1", "-i", "seed=-2"], "seed: -2 is below the minimum -1"),
        (["-i", "aspect_ratio=1:1", "-i", "seed=abc"], 'seed: "abc" is not an integer'),
        (
            ["-i", "aspect_ratio=1:1", "-i", "style_reference_images:=[]"],
            "style_reference_images: 0 item(s) given, at least 1 needed",
        ),
        (
            [
                "-i",
                "aspect_ratio=1:1",
                "-i",
                "style_reference_images:="
                + json.dumps([f"https://e.com/{n}.png" for n in range(5)]),
            ],
            "style_reference_images: 5 items given, at most 4 allowed",
        ),
        (
            ["-i", "colour=red", "-i", "aspect_ratio=1:1"],
            "unknown input: colour (valid: aspect_ratio, image, mask, prompt, seed, style, "
            "style_reference_images)",
        ),
    ],
)
def test_validation_messages_read_like_a_person_wrote_them(siray, emu, args, message):
    before = created(emu)
    result = siray("generate", IDEOGRAM, "poster", "-i", "image=https://e.com/i.png", *args)
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert created(emu) == before  # nothing was paid for


def test_missing_inputs_are_reported_all_at_once(siray):
    result = siray("generate", IDEOGRAM, "poster")
    assert result.exit_code == 2
    # every missing input at once, an enum's with the values it may take
    assert "missing required inputs: aspect_ratio (one of 1:1, 16:9, " in result.stderr
    assert "), image\n" in result.stderr
    assert "for example: -i aspect_ratio=1:1 -i image=..." in result.stderr


def test_no_validate_meets_the_servers_own_check(siray):
    result = siray("generate", IDEOGRAM, "poster", "--no-validate", "--json")
    assert result.exit_code == 2
    error = result.json()["error"]
    assert error["status_code"] == 400 and "required property" in error["message"]


def test_a_required_input_with_a_default_may_be_omitted(siray, make_emulator):
    schema = {
        "type": "object",
        "required": ["prompt", "steps"],
        "properties": {"prompt": {"type": "string"}, "steps": {"type": "integer", "default": 20}},
    }
    server = make_emulator(extra_models={"acme/defaulted": ("text-to-image", schema)})
    result = siray("generate", "acme/defaulted", "x", server=server)
    assert result.exit_code == 0, result
    assert last_body(server)["steps"] == 20  # required by the schema, defaulted


def test_an_unknown_model_refreshes_once_then_suggests(siray, emu):
    siray("models", "list")
    before = catalogue_requests(emu)
    result = siray("run", "google/gemini-2.5-flash-image", "x")
    assert result.exit_code == 2
    assert "did you mean google/gemini-2.5-flash-image-t2i" in result.stderr
    assert catalogue_requests(emu) == before + 1


def test_kind_comes_from_the_catalogue_tag(siray, make_emulator, tmp_path):
    extra = {
        "data": [
            {
                "model_name": "acme/motion",
                "tag": "video",
                "model_extend_info": json.dumps(
                    {
                        "type": "object",
                        "properties": {"prompt": {"type": "string"}},
                        "required": ["prompt"],
                    }
                ),
            },
            {
                "model_name": "acme/stills-t2v-compatible",
                "tag": "text-to-image",
                "model_extend_info": "{}",
            },
        ]
    }
    (tmp_path / "models.json").write_text(json.dumps(extra))
    from siray_cli.emulator.catalogue import load_models

    server = make_emulator(extra_models=load_models((tmp_path / "models.json").read_text()))
    video = siray("generate", "acme/motion", "x", server=server)
    assert video.exit_code == 0, video
    assert video.stdout.startswith("video_")  # the name says image; the tag says video
    image = siray("generate", "acme/stills-t2v-compatible", "x", server=server)
    assert image.exit_code == 0, image
    assert image.stdout.startswith("image_")  # the name says video; the tag says image


INFO = ModelInfo(
    "t/m",
    "text-to-image",
    {
        "type": "object",
        "properties": {
            "prompt": {"type": "string"},
            "count": {"type": "integer", "minimum": 1},
            "strength": {"type": "number"},
            "hd": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "ratios": {"type": "array", "items": {"type": "number"}},
        },
        "required": ["prompt"],
    },
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("count=3", 3),
        ("strength=0.5", 0.5),
        ("strength=2", 2),
        ("hd=yes", True),
        ("hd=0", False),
        ("hd=TRUE", True),
        ("hd=off", False),
        ("prompt=42", "42"),
        ("tags=a", ["a"]),
        ('tags=["a","b"]', ["a", "b"]),
        ("ratios=1.5", [1.5]),
        ("count:=7", 7),
        ("other=[1]", [1]),
    ],
)
def test_coercion_by_type(text, expected):
    item = parse_input(text)
    assert coerce_inputs([item], INFO)[item.key] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("count=x", 'count: "x" is not an integer'),
        ("count=1.5", "not an integer"),
        ("strength=nan", "not a finite number"),
        ("hd=maybe", "is not a boolean"),
        ("ratios=abc", 'ratios: "abc" is not a number'),
        ("tags=[1", "is not a JSON list"),
    ],
)
def test_coercion_errors(text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")):
        coerce_inputs([parse_input(text)], INFO)


@given(st.text(), st.sampled_from(sorted(INFO.properties)))
def test_parsing_and_coercion_never_crash(text, key):
    for candidate in (text, f"{key}={text}", f"{key}:={text}"):
        try:
            body = coerce_inputs([parse_input(candidate)], INFO)
            body.setdefault("prompt", "p")
            validate_body(body, INFO)
        except UsageError as exc:
            assert exc.message


def test_a_missing_enum_input_lists_its_values_and_an_example_that_works(siray, emu):
    missing = siray("generate", "alibaba/z-image-turbo-t2i", "a fox")
    assert missing.exit_code == 2, missing
    assert "missing required input: size (one of 1024x768, 768x1024, 1024x1024)" in missing.stderr
    assert "for example: -i size=1024x768" in missing.stderr
