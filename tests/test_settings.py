"""Settings precedence, unit by unit: flag, then environment, then profile, then default; each value
read back as its type and with the source `--debug` and `siray auth status` report. Settings are
built directly (no process, no emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from siray_cli.errors import UsageError
from siray_cli.settings import Settings, check_value, stored_value
from siray_cli.settings_keys import HISTORY, MODEL, POLL_INTERVAL, TIMEOUT, UPLOAD_MAX_SIZE


def settings(
    tmp_path: Path,
    flags: dict[str, str | None] | None = None,
    profile: dict[str, object] | None = None,
    profile_name: str | None = None,
    trace: list[str] | None = None,
    **env: str,
) -> Settings:
    made = Settings(
        flags or {},
        profile=profile_name,
        env={"SIRAY_CONFIG_DIR": str(tmp_path), **env},
        trace=None if trace is None else trace.append,
    )
    for name, value in (profile or {}).items():
        made.config.update(profile_name or "default", name, value)
    return made


def where(made: Settings) -> str:
    return f"profile {made.profile_name} in {made.config.path}"


def test_the_default_when_nothing_is_given(tmp_path):
    made = settings(tmp_path)
    setting = made.get("timeout")
    assert (setting.value, setting.source, setting.typed) == ("1800", "default", 1800.0)
    assert made.read(MODEL) is None and made.get("model").source == "default"


def test_a_profile_beats_the_default(tmp_path):
    made = settings(tmp_path, profile={"timeout": 30.0, "model": "a/b"})
    assert made.get("timeout").source == where(made)
    assert made.read(TIMEOUT) == 30.0 and made.read(MODEL) == "a/b"


def test_the_environment_beats_a_profile(tmp_path):
    made = settings(tmp_path, profile={"timeout": 30.0}, SIRAY_TIMEOUT="45")
    setting = made.get("timeout")
    assert (setting.value, setting.source, setting.typed) == ("45", "env SIRAY_TIMEOUT", 45.0)


def test_a_flag_beats_the_environment(tmp_path):
    made = settings(
        tmp_path, {"base_url": "http://flag.example/"}, SIRAY_BASE_URL="http://env.example"
    )
    assert made.base_url.value == "http://flag.example"
    assert made.base_url.source == "flag --base-url"
    # an option's own value (as `--timeout 12` hands it over) counts as a flag
    setting = made.resolve(TIMEOUT, 12.0)
    assert (setting.typed, setting.source) == (12.0, "flag --timeout")


def test_an_empty_variable_or_flag_is_not_given(tmp_path):
    made = settings(tmp_path, {"model": ""}, profile={"model": "a/b"}, SIRAY_MODEL="")
    assert made.get("model").source == where(made)


def test_the_profile_in_effect_is_the_flag_then_the_environment(tmp_path):
    settings(tmp_path, profile={"model": "work/m"}, profile_name="work")
    made = settings(tmp_path, profile_name="work", SIRAY_PROFILE="other")
    assert (made.profile_name, made.profile_source) == ("work", "flag --profile")
    assert made.read(MODEL) == "work/m"
    made = settings(tmp_path, SIRAY_PROFILE="work")
    assert (made.profile_name, made.profile_source) == ("work", "env SIRAY_PROFILE")
    with pytest.raises(UsageError, match=r"profile 'nope' .* does not exist"):
        settings(tmp_path, SIRAY_PROFILE="nope").get("model")


def test_values_are_read_as_their_type(tmp_path):
    made = settings(tmp_path, {"history": "off"}, SIRAY_UPLOAD_MAX_SIZE=" 1000 ")
    assert made.upload_max_size == 1000 and isinstance(made.upload_max_size, int)
    assert made.download_max_size == 4 * 1024**3
    assert made.history is False and made.get("history").value == "off"
    assert made.read(POLL_INTERVAL) is None
    assert isinstance(made.read_timeout, float) and made.retry_backoff == 0.5
    assert made.s3_addressing == "path"


def test_typed_reads_are_traced_with_their_source(tmp_path):
    heard: list[str] = []
    made = settings(tmp_path, trace=heard, SIRAY_POLL_INTERVAL="0.2")
    made.read(POLL_INTERVAL)
    made.read(UPLOAD_MAX_SIZE)
    made.get("timeout")  # the where-from lookup (`config list`, `auth status`) is not traced
    assert heard == [
        "poll_interval = 0.2 from env SIRAY_POLL_INTERVAL",
        f"upload_max_size = {2 * 1024**3} from default",
    ]


def test_a_bad_value_names_its_source(tmp_path):
    made = settings(tmp_path, profile={"read_timeout": -1})
    with pytest.raises(UsageError) as caught:
        made.read_timeout  # noqa: B018
    assert caught.value.message == (
        f"read_timeout '-1' (from {where(made)}) must be a positive number of seconds"
    )
    with pytest.raises(UsageError, match="must be on or off"):
        settings(tmp_path, SIRAY_HISTORY="maybe").read(HISTORY)


def test_a_size_once_stored_as_a_float_is_read_as_bytes(tmp_path):
    made = settings(tmp_path, profile={"upload_max_size": 100.0})
    assert made.upload_max_size == 100


def test_config_set_stores_numbers_as_their_type():
    assert stored_value("upload_max_size", check_value("upload_max_size", "100")) == 100
    assert stored_value("timeout", check_value("timeout", "30")) == 30.0
    assert stored_value("history", check_value("history", "no")) == "off"
    with pytest.raises(UsageError, match="upload_part_size '1' must be at least 5 MiB"):
        check_value("upload_part_size", "1")


def test_a_higgsfield_credential_comes_from_its_own_variables(tmp_path):
    made = settings(
        tmp_path,
        {"provider": "higgsfield"},
        profile={"api_key": "siray-key-in-the-profile"},
        HF_API_KEY="id",
        HF_API_SECRET="secret",
        SIRAY_API_KEY="a-siray-key",
    )
    assert made.api_key.value == "id:secret"
    assert made.api_key.source == "env HF_API_KEY + HF_API_SECRET"
    made = settings(tmp_path, {"provider": "higgsfield"}, HF_KEY="k:s", HF_API_KEY="id")
    assert (made.api_key.value, made.api_key.source) == ("k:s", "env HF_KEY")
    made = settings(tmp_path, {"provider": "higgsfield"}, SIRAY_API_KEY="a-siray-key")
    assert made.api_key.value is None  # one provider's key is never another's
    assert made.base_url.value == "https://api.higgsfield.ai"
