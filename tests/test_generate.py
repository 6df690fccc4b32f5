"""`siray generate`: inputs in every form, the bare id on stdout, and nothing sent on bad input."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from helpers import Z_IMAGE as MODEL
from helpers import emulator_stats, last_body


def test_generate_prints_the_bare_id(siray, emu):
    result = siray("generate", MODEL, "a cat", "-i", "size=1024x768")
    assert result.exit_code == 0, result
    assert result.stdout.strip().startswith("image_") and result.stdout.count("\n") == 1
    task_id = result.stdout.strip()
    assert task_id in emu.state.tasks
    assert f"siray status {task_id} --wait" in result.stderr


def test_generate_json(siray):
    result = siray("generate", MODEL, "a cat", "-i", "size=1024x768", "--json")
    assert result.exit_code == 0, result
    assert result.json() == {"task_id": result.json()["task_id"], "kind": "image", "model": MODEL}


def test_quiet_leaves_only_data(siray):
    result = siray("-q", "generate", MODEL, "a cat", "-i", "size=1024x768")
    assert result.exit_code == 0
    assert result.stderr == ""


def test_inputs_are_decoded_as_json_when_they_parse(siray, emu):
    result = siray(
        "generate",
        "ideogram/ideogram-v3-turbo-i2i",
        "a poster",
        "-i",
        "aspect_ratio=16:9",
        "-i",
        "seed=42",
        "-i",
        "image=https://example.com/a.png",
        "-i",
        'style_reference_images=["https://e.com/1.png"]',
        "-i",
        "style=Auto",
        "-i",
        "mask=https://e.com/m.png?x=1&y=2",
    )
    assert result.exit_code == 0, result
    body = last_body(emu)
    assert body["seed"] == 42
    assert body["aspect_ratio"] == "16:9"
    assert body["style_reference_images"] == ["https://e.com/1.png"]
    assert body["mask"] == "https://e.com/m.png?x=1&y=2"  # values may contain '='


def test_forced_json_and_values_starting_with_a_dash(siray, emu):
    result = siray(
        "generate", MODEL, "-i", "size=1024x768", "-i", "seed:=-1", "--prompt", "-dashes- are fine"
    )
    assert result.exit_code == 0, result
    body = last_body(emu)
    assert body["seed"] == -1 and body["prompt"] == "-dashes- are fine"


def test_prompt_after_double_dash(siray, emu):
    result = siray("generate", MODEL, "-i", "size=1024x768", "--", "-starts with a dash")
    assert result.exit_code == 0, result
    assert last_body(emu)["prompt"] == "-starts with a dash"


def test_prompt_from_stdin_only_when_asked(siray, emu):
    result = siray("generate", MODEL, "-", "-i", "size=1024x768", input="from stdin\n")
    assert result.exit_code == 0, result
    assert last_body(emu)["prompt"] == "from stdin"
    result = siray(
        "generate", MODEL, "--prompt-file", "-", "-i", "size=1024x768", input="file stdin\n"
    )
    assert last_body(emu)["prompt"] == "file stdin"


def test_prompt_file_and_input_json(siray, emu, tmp_path):
    (tmp_path / "p.txt").write_text("from a file\n")
    (tmp_path / "body.json").write_text(json.dumps({"size": "768x1024", "seed": 3}))
    result = siray(
        "generate", MODEL, "--prompt-file", "p.txt", "--input-json", "body.json", "-i", "seed=4"
    )
    assert result.exit_code == 0, result
    assert last_body(emu) == {
        "size": "768x1024",
        "seed": 4,
        "model": MODEL,
        "prompt": "from a file",
    }


def test_input_json_from_stdin_with_prompt_inside(siray, emu):
    body = {"prompt": "in the body", "size": "1024x1024"}
    result = siray("generate", MODEL, "--input-json", "-", input=json.dumps(body))
    assert result.exit_code == 0, result
    assert last_body(emu)["prompt"] == "in the body"


def test_local_image_becomes_a_data_url(siray, emu, tmp_path):
    (tmp_path / "in.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    result = siray(
        "generate", "google/gemini-2.5-flash-image-i2i", "edit", "--image", "in.png", "--inline"
    )
    assert result.exit_code == 0, result
    assert last_body(emu)["image"].startswith("data:image/png;base64,")


def test_video_kind_inferred_from_the_model_name(siray, emu):
    result = siray("generate", "google/veo-3.1-t2v", "waves")
    assert result.exit_code == 0, result
    assert result.stdout.startswith("video_")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "size"], "is not key=value"),
        (["-i", "=x"], "no valid key"),
        (["-i", "seed:=nope"], "not valid JSON"),
        (["--input-json", "missing.json"], "does not exist"),
        (["--image", "missing.png", "-p", "x"], "does not exist"),
        (["--prompt", "a", "--prompt-file", "x"], "more than once"),
        (["--prompt", "   "], "prompt is empty"),
        (["--kind", "audio", "--prompt", "x"], "audio"),
    ],
)
def test_bad_input_is_one_clear_line_exit_2_and_nothing_is_sent(siray, emu, args, message):
    before = emulator_stats(emu)["requests"]
    result = siray("generate", MODEL, *args)
    assert result.exit_code == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert emulator_stats(emu)["requests"] == before


def test_no_prompt_is_a_usage_error(siray):
    result = siray("generate", MODEL, "-i", "size=1024x768", "--json")
    assert result.exit_code == 2
    assert result.json()["error"]["type"] == "usage_error"
    assert "no prompt" in result.stderr


def test_stdin_cannot_serve_twice(siray):
    result = siray("generate", MODEL, "-", "--input-json", "-", input="x")
    assert result.exit_code == 2
    assert "standard input is already used" in result.stderr


def test_server_side_validation_error_exits_2(siray):
    result = siray("generate", MODEL, "x", "-i", "size=1024x1000", "--json", "--no-validate")
    assert result.exit_code == 2, result
    error = result.json()["error"]
    assert error["status_code"] == 400 and error["type"] == "bad_request"
    assert "1024x1000" in error["message"]


def test_unknown_model_exits_2(siray):
    result = siray("generate", "nobody/nothing", "x")
    assert result.exit_code == 2
    assert "model 'nobody/nothing' is not in the catalogue" in result.stderr
    sent = siray("generate", "nobody/nothing", "x", "--no-validate")
    assert sent.exit_code == 2 and "does not exist" in sent.stderr  # the server's own check


def test_dry_run_fails_as_the_submit_would_and_sends_nothing(siray, emu, isolated_environment):
    before = emulator_stats(emu)["requests"].get("POST /v1/images/generations/async", 0)
    bad = siray("generate", MODEL, "a cat", "-i", "size=1024x1000", "--dry-run")
    assert bad.exit_code == 2 and 'size: "1024x1000" is not one of' in bad.stderr
    good = siray("generate", MODEL, "a cat", "-i", "size=1024x768", "--dry-run", "--json")
    assert good.exit_code == 0, good
    assert good.json()["body"] == {"model": MODEL, "prompt": "a cat", "size": "1024x768"}
    assert emulator_stats(emu)["requests"].get("POST /v1/images/generations/async", 0) == before
    assert not (isolated_environment / "data").exists()  # no history made, let alone a row


def test_hints_for_a_missing_model_or_prompt_spell_generate_not_run(siray):
    no_prompt = siray("generate", MODEL, "-i", "size=1024x768")
    assert no_prompt.exit_code == 2, no_prompt
    assert 'hint: give one: siray generate MODEL "a lighthouse at dusk"' in no_prompt.stderr
    empty = siray("generate", MODEL, " ")
    assert empty.exit_code == 2, empty
    assert 'hint: give a prompt: siray generate MODEL "a red fox"' in empty.stderr
    no_model = siray("generate")
    assert no_model.exit_code == 2, no_model
    assert "hint: siray generate MODEL PROMPT, or set a default" in no_model.stderr
    # followed with the model, the hint's command is one generate takes
    followed = siray("generate", MODEL, "a lighthouse at dusk", "-i", "size=1024x768")
    assert followed.exit_code == 0, followed


def test_a_prompt_taken_for_an_option_gets_a_hint_that_sends_it(siray, emu):
    refused = siray("generate", MODEL, "-dash prompt", "-i", "size=1024x768")
    assert refused.exit_code == 2, refused
    assert "No such option '-d'" in refused.stderr
    hint = refused.stderr.split("hint: ", 1)[1]
    after_dashes = re.search(r": (siray generate MODEL -- '-dash prompt'),", hint)
    in_option = re.search(r"in (--prompt='-dash prompt');", hint)
    assert after_dashes and in_option, hint
    # each way the hint gives sends the prompt as typed (options before the --)
    for words in (
        shlex.split(after_dashes[1].replace("MODEL", f"{MODEL} -i size=1024x768")),
        ["siray", "generate", MODEL, "-i", "size=1024x768", *shlex.split(in_option[1])],
    ):
        sent = siray(*words[1:])
        assert sent.exit_code == 0, sent
        assert last_body(emu)["prompt"] == "-dash prompt"
    # an option that is no prompt keeps the plain hint
    other = siray("generate", MODEL, "a cat", "--frobnicate")
    assert other.exit_code == 2
    assert other.stderr.endswith("hint: `siray generate --help` shows the usage\n")
