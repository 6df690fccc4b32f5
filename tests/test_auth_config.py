"""`siray auth` and `siray config`: login, profiles, precedence, file safety, and the key never
shown anywhere but `siray auth token`."""

from __future__ import annotations

import itertools
import json
import os
import stat
from pathlib import Path

import pytest
from helpers import run_in_terminal, siray_command
from hypothesis import given, settings
from hypothesis import strategies as st

from siray_cli.output import Output
from siray_cli.scrub import PARTIAL, REDACTED
from siray_cli.settings import mask

KEY = "sk-LEAKCHECK-0123456789abcdef"


def config_file(home: Path) -> Path:
    return home / "config" / "config.toml"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keyed(make_emulator):
    """An emulator that accepts the recognisable KEY."""
    return make_emulator(api_key=KEY)


def test_login_with_token_verifies_saves_0600_and_status_shows_the_source(
    siray, keyed, isolated_environment
):
    env = {"SIRAY_API_KEY": None}
    result = siray("auth", "login", "--with-token", input=KEY + "\n", env=env, server=keyed)
    assert result.exit_code == 0, result
    path = config_file(isolated_environment)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert f"profile default in {path}" in result.stderr
    status = siray("auth", "status", "--json", env=env, server=keyed)
    assert status.exit_code == 0, status
    assert status.json() == {
        "profile": "default",
        "key": "sk-…cdef",
        "key_source": f"profile default in {path}",
        "base_url": keyed.url,
        "gateway_url": keyed.url,
        "key_works": True,
    }
    assert siray("auth", "token", env=env, server=keyed).stdout == KEY + "\n"
    # and the saved key is what the API commands use
    generated = siray("generate", "google/gemini-2.5-flash-image-t2i", "x", env=env, server=keyed)
    assert generated.exit_code == 0, generated


def test_login_prompts_with_hidden_input_on_a_terminal(keyed, isolated_environment):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRAY_")}
    env.update(SIRAY_CONFIG_DIR=str(isolated_environment / "config"), SIRAY_BASE_URL=keyed.url)
    code, screen = run_in_terminal(
        siray_command("auth", "login"), env, answer=("Siray API key", KEY + "\r")
    )
    assert code == 0, screen
    assert "Siray API key" in screen and KEY not in screen  # hidden, never echoed
    assert KEY in config_file(isolated_environment).read_text()


def test_login_refuses_to_prompt_without_a_terminal(siray, isolated_environment):
    result = siray("auth", "login", input="")
    assert result.exit_code == 2
    assert "will not prompt" in result.stderr and "--with-token" in result.stderr
    assert not config_file(isolated_environment).exists()


def test_login_with_a_rejected_key_saves_nothing(siray, isolated_environment):
    result = siray("auth", "login", "--with-token", input="sk-wrong-key-000000000")
    assert result.exit_code == 3
    assert "rejected this key; nothing was saved" in result.stderr
    assert not config_file(isolated_environment).exists()
    saved = siray("auth", "login", "--with-token", "--no-verify", input="sk-wrong-key-000000000")
    assert saved.exit_code == 0
    assert siray("auth", "status", "--json", env={"SIRAY_API_KEY": None}).exit_code == 3


def test_logout_keeps_the_rest_of_the_profile(siray, isolated_environment):
    siray("config", "set", "timeout", "60")
    siray("auth", "login", "--with-token", "--no-verify", input=KEY)
    result = siray("auth", "logout")
    assert result.exit_code == 0
    text = config_file(isolated_environment).read_text()
    assert KEY not in text and "timeout = 60.0" in text
    assert mode(config_file(isolated_environment)) == 0o600


@pytest.mark.parametrize(
    ("flag", "env", "profile"), list(itertools.product([False, True], repeat=3))
)
def test_precedence_flag_then_env_then_profile_then_default(
    siray, flag, env, profile, isolated_environment
):
    if profile:
        assert siray("config", "set", "base_url", "https://profile.example").exit_code == 0
    args = ["--base-url", "https://flag.example"] if flag else []
    variables = {"SIRAY_BASE_URL": "https://env.example" if env else None}
    result = siray(*args, "config", "list", "--json", env=variables)
    assert result.exit_code == 0, result
    setting = result.json()["base_url"]
    if flag:
        expected = ("https://flag.example", "flag --base-url")
    elif env:
        expected = ("https://env.example", "env SIRAY_BASE_URL")
    elif profile:
        expected = (
            "https://profile.example",
            f"profile default in {config_file(isolated_environment)}",
        )
    else:
        expected = ("https://api.siray.ai", "default")
    assert (setting["value"], setting["source"]) == expected


def test_profiles_by_flag_and_environment(siray):
    assert siray("config", "set", "model", "google/veo-3.1-t2v", "--profile", "work").exit_code == 0
    assert siray("--profile", "work", "config", "get", "model").stdout == "google/veo-3.1-t2v\n"
    result = siray("config", "get", "model", env={"SIRAY_PROFILE": "work"})
    assert result.stdout == "google/veo-3.1-t2v\n"
    assert siray("config", "get", "model").stdout == ""
    missing = siray("--profile", "nope", "config", "list")
    assert missing.exit_code == 2
    assert "profile 'nope' (from flag --profile) does not exist" in missing.stderr
    assert "profiles: work" in missing.stderr
    # config's readers take --profile after the command too, as set and unset do
    assert siray("config", "get", "model", "--profile", "work").stdout == "google/veo-3.1-t2v\n"
    listed = siray("config", "list", "--profile", "work", "--json").json()
    assert listed["model"]["value"] == "google/veo-3.1-t2v"
    assert listed["model"]["source"].startswith("profile work in ")
    assert siray("config", "list", "--profile", "nope").exit_code == 2
    removed = siray("config", "unset", "model", "--profile", "work")
    assert removed.exit_code == 0 and "removed model from profile work" in removed.stderr
    again = siray("config", "unset", "model", "--profile", "work")
    assert again.exit_code == 0 and "model was not set in profile work" in again.stderr


def test_profile_defaults_feed_run(siray, emu, tmp_path):
    siray("config", "set", "model", "google/gemini-2.5-flash-image-t2i")
    siray("config", "set", "output_dir", str(tmp_path / "assets"))
    siray("config", "set", "poll_interval", "0.2")
    result = siray("--debug", "run", "a red fox", env={"SIRAY_POLL_INTERVAL": None})
    assert result.exit_code == 0, result
    (path,) = [Path(line) for line in result.lines]
    assert path.parent == tmp_path / "assets" and path.suffix == ".png"
    assert "debug: poll_interval = 0.2 from profile default in" in result.stderr
    assert "debug: timeout = 1800 from default" in result.stderr


def test_values_are_type_checked_and_keys_known(siray, isolated_environment):
    bad = siray("config", "set", "timeout", "--", "-5")
    assert bad.exit_code == 2 and "must be 0 (no limit) or a positive number" in bad.stderr
    assert siray("config", "set", "base_url", "ftp://x").exit_code == 2
    unknown = siray("config", "set", "colour", "blue")
    assert unknown.exit_code == 2
    assert "valid settings: provider, api_key, base_url" in unknown.stderr
    assert not config_file(isolated_environment).exists()  # nothing was written


def test_every_write_leaves_mode_0600(siray, isolated_environment):
    path = config_file(isolated_environment)
    for args in (
        ["config", "set", "timeout", "30"],
        ["config", "set", "model", "a/b"],
        ["config", "unset", "model"],
        ["auth", "logout"],
    ):
        assert siray(*args).exit_code == 0
        assert mode(path) == 0o600, args
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.toml"]  # no temp files


def test_a_readable_config_file_gets_a_warning(siray, isolated_environment):
    siray("config", "set", "timeout", "30")
    path = config_file(isolated_environment)
    path.chmod(0o644)
    result = siray("config", "get", "timeout")
    assert result.stdout == "30\n"
    assert (
        f"warning: config file {path} can be read by other users; run: chmod 600 {path}"
        in result.stderr
    )


def test_a_corrupt_config_file_is_reported_and_left_alone(siray, isolated_environment):
    path = config_file(isolated_environment)
    path.parent.mkdir(parents=True)
    path.write_bytes(b'[profiles.default]\napi_key = "unterminated\n')
    path.chmod(0o600)
    before = path.read_bytes()
    for args in (
        ["config", "list"],
        ["config", "set", "timeout", "3"],
        ["generate", "m/x", "p"],
        ["auth", "login", "--with-token", "--no-verify"],
    ):
        result = siray(*args, input=KEY, env={"SIRAY_API_KEY": None})
        assert result.exit_code == 2, (args, result)
        assert f"config file {path} is not valid TOML" in result.stderr
        assert "line 2" in result.stderr
        assert path.read_bytes() == before
    assert siray("config", "path").stdout == f"{path}\n"  # needs no parsing


@settings(max_examples=300, deadline=None)
@given(
    secret=st.text("abAB01-_", min_size=PARTIAL + 1, max_size=40),
    cuts=st.lists(st.tuples(st.integers(1, 40), st.booleans(), st.text("ab-x ", max_size=6))),
)
def test_no_piece_of_a_secret_survives_scrubbing(secret, cuts):
    # whatever a server echoes (whole, cut at either end, run together), no prefix or suffix of
    # PARTIAL characters or more is left
    text = "".join((secret[:n] if head else secret[-n:]) + noise for n, head, noise in cuts)
    output = Output()
    output.add_secret(secret)
    shown = output.scrub(text + secret).replace(REDACTED, "\0")
    for n in range(PARTIAL, len(secret) + 1):
        assert secret[:n] not in shown and secret[-n:] not in shown


def test_a_long_token_is_scrubbed_by_its_pieces():
    # a temporary S3 token is hundreds of characters: its pieces are found without building a
    # pattern of every one (that grew with the square of its length)
    token = "".join(chr(65 + (i * 7) % 26) + str(i % 10) for i in range(600))
    output = Output()
    output.add_secret(token)
    echoed = f"start {token[:300]} middle {token[-450:]} end {token}"
    assert output.scrub(echoed) == "start *** middle *** end ***"


def test_a_colon_inside_the_secret_of_an_id_secret_pair_is_part_of_the_secret():
    output = Output()
    output.add_secret("kid:s3cr3t:0123456789abcdef")
    assert output.scrub("a s3cr3t:0123 b kid:s3cr3t:0123456789abcdef") == "a *** b ***"


def test_masking():
    assert mask(KEY) == "sk-…cdef"
    assert mask("short") == "*****"
    assert mask("0123456789ab") == "01…ab"
    assert mask(None) == "(none)"


def test_the_key_appears_only_in_auth_token(siray, keyed, tmp_path):
    env = {"SIRAY_API_KEY": KEY}
    siray("auth", "login", "--with-token", "--no-verify", input=KEY, server=keyed)
    task = siray("generate", "google/gemini-2.5-flash-image-t2i", "x", env=env, server=keyed)
    task_id = task.stdout.strip()
    held = siray(
        "generate", "google/gemini-2.5-flash-image-t2i", "[hold]", env=env, server=keyed
    ).stdout.strip()
    commands = [
        ["run", "google/gemini-2.5-flash-image-t2i", "x", "-o", str(tmp_path), "--json"],
        ["run", "google/gemini-2.5-flash-image-t2i", "[fail]"],
        ["status", task_id, "--wait", "--json"],
        ["status", "image_missing"],
        ["cancel", held],
        ["auth", "status"],
        ["auth", "status", "--json"],
        ["config", "list"],
        ["config", "list", "--json"],
        ["config", "get", "api_key"],
        ["--api-key", KEY, "generate", "nobody/model", "x"],
        ["--api-key", KEY, "--base-url", "http://127.0.0.1:9", "status", task_id],
    ]
    for args in commands:
        result = siray("--debug", *args, env=env, server=keyed)
        assert result.exit_code in (0, 1, 2, 5), (args, result)
        assert KEY not in result.stdout + result.stderr, args
    wrong = siray("--debug", "status", task_id, env={"SIRAY_API_KEY": KEY + "x"}, server=keyed)
    assert wrong.exit_code == 3 and KEY not in wrong.stdout + wrong.stderr
    assert siray("auth", "token", env=env, server=keyed).stdout == KEY + "\n"


def test_config_list_on_a_pipe_is_tab_separated(siray):
    siray("config", "set", "timeout", "45")
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in siray("config", "list").lines}
    assert rows["timeout"][0] == "45" and rows["timeout"][1].startswith("profile default in ")
    assert rows["base_url"] == ["https://api.siray.ai", "default"] or rows["base_url"][
        1
    ].startswith("env")
    assert json.loads(siray("config", "list", "--json").stdout)["api_key"]["source"]


def test_auth_status_without_a_server_says_so_without_an_internal_id(siray):
    result = siray(
        "auth", "status", env={"SIRAY_API_KEY": KEY, "SIRAY_BASE_URL": "http://127.0.0.1:9"}
    )
    assert result.exit_code == 5, result
    assert result.stderr.startswith("error: checking the key: could not reach http://127.0.0.1:9")
    assert "auth-check" not in result.stderr


def test_a_key_no_header_can_carry_is_refused_in_one_line(siray):
    """Found by an adversarial pass: a non-ASCII key ended in a UnicodeEncodeError (exit 5), and
    a key with an escape sequence in it was saved."""
    used = siray("status", "image_abc", env={"SIRAY_API_KEY": "sk-\u00c4BC123456789"})
    assert used.exit_code == 3, used
    assert "cannot carry" in used.stderr and "Traceback" not in used.stderr
    assert "\u00c4BC123456789" not in used.stderr
    saved = siray("auth", "login", "--with-token", "--no-verify", input="sk-a\x1b]0;x\x07bc12345\n")
    assert saved.exit_code == 2 and "control characters" in saved.stderr, saved


def test_a_mistyped_setting_name_gets_the_closest(siray):
    typo = siray("config", "set", "timout", "5")
    assert typo.exit_code == 2, typo
    assert "unknown setting 'timout' (did you mean timeout?)" in typo.stderr
