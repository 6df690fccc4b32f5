"""Names of saved files: --name-template and the name_template setting, on `run -o`, `status -o`,
`download -o` and batches. Every field is filled, no value a server or a batch file gives can
leave the directory, and a template that cannot work is refused before anything is paid."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import GEMINI_IMAGE as MODEL
from helpers import created, write_jobs
from hypothesis import given, settings
from hypothesis import strategies as st

from siray_cli.names import FILE_LIMIT, TEMPLATE_FIELDS, NameTemplate

HOSTILE = [
    "../../escape",
    "..",
    ".",
    ".hidden",
    "a/b\\c",
    "/etc/passwd",
    "nul\x00byte",
    "line\nbreak",
    "é" * 300,
    "x" * 1000,
    "",
]
values = st.one_of(st.sampled_from(HOSTILE), st.text())
TEMPLATES = [
    "{task_id}_{n}.{ext}",
    "{name}.{ext}",
    "{name}",
    "{line}",
    "{model}-{line}_{date}",
    "{ext}{name}{name}{name}{name}",
    "x{n}",
]
BASE = Path("/srv/out")


def assert_stays_in(name: str) -> None:
    assert name and name.isascii() and name not in (".", "..")
    assert not any(ch in name for ch in "/\\\x00\n") and not name.startswith(".")
    assert len(name) <= FILE_LIMIT
    assert Path(os.path.normpath(BASE / name)).parent == BASE


@settings(deadline=None)  # a loaded CI machine once took over the default 200 ms an example
@given(
    template=st.sampled_from(TEMPLATES),
    fields=st.fixed_dictionaries({field: values for field in TEMPLATE_FIELDS}),
    several=st.booleans(),
)
def test_no_value_leaves_the_directory(template, fields, several):
    assert_stays_in(NameTemplate(template).file_name(fields, several=several))


@settings(deadline=None)
@given(text=st.text(), fields=st.fixed_dictionaries({f: values for f in TEMPLATE_FIELDS}))
def test_any_template_is_refused_or_names_a_file_in_the_directory(text, fields):
    try:
        template = NameTemplate(text)
    except ValueError:
        return
    assert_stays_in(template.file_name(fields, several=True))


def test_a_template_without_n_or_ext_gets_them_where_needed():
    fields = {"name": "fox", "ext": "png", "n": "2"}
    assert NameTemplate("{name}").file_name(fields, several=False) == "fox.png"
    assert NameTemplate("{name}").file_name(fields, several=True) == "fox_2.png"
    assert NameTemplate("{name}-{n}.{ext}").file_name(fields, several=True) == "fox-2.png"


@pytest.mark.parametrize(
    "text", ["{foo}.{ext}", "{}", "{0}", "{name.x}", "{n:03}", "{name!r}", "a/{n}", "plain", "{"]
)
def test_templates_that_cannot_work_are_refused(text):
    with pytest.raises(ValueError):
        NameTemplate(text)


def test_run_fills_every_field(siray, emu, tmp_path):
    out = tmp_path / "out"
    template = "{date}_{model}_{task_id}_{n}_{line}.{ext}"
    result = siray("run", MODEL, "names run", "-o", str(out), "--name-template", template)
    assert result.exit_code == 0, result
    task_id = max(emu.state.tasks.values(), key=lambda t: t.created).task_id
    expected = out / f"{time.strftime('%Y-%m-%d')}_{MODEL.replace('/', '_')}_{task_id}_1_.png"
    assert result.stdout.splitlines() == [str(expected)]
    assert expected.is_file()


def test_a_batch_names_hostile_lines_inside_its_directory(siray, tmp_path):
    names = ["../../escape", ".hidden", "a/b", "x" * 500, "nul\x00byte", ".."]
    jobs = write_jobs(
        tmp_path / "jobs.jsonl",
        *({"prompt": f"names hostile {i}", "name": name} for i, name in enumerate(names)),
        {"prompt": "names nameless"},
    )
    out = tmp_path / "out"
    result = siray(
        "run", "--batch", str(jobs), "-m", MODEL, "-o", str(out),
        "--name-template", "{name}.{ext}",
    )  # fmt: skip
    assert result.exit_code == 0, result
    saved = sorted(path.name for path in out.iterdir())
    assert len(saved) == 7
    for name in saved:
        assert_stays_in(name)
    assert (
        "_._.._escape.png" in saved
        and "_..png" in saved
        and "_hidden.png" in saved
        and "a_b.png" in saved
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "jobs.jsonl", "out"]


def test_status_and_download_name_a_batch_task_as_its_line(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "names first"}, {"prompt": "names fox", "name": "fox"}
    )
    assert siray("run", "--batch", str(jobs), "-m", MODEL).exit_code == 0
    fox = next(t.task_id for t in emu.state.tasks.values() if t.body["prompt"] == "names fox")
    template = "{line}_{name}.{ext}"
    got = siray("download", fox, "-o", str(tmp_path / "dl"), "--name-template", template)
    assert got.exit_code == 0, got
    assert (tmp_path / "dl" / "2_fox.png").is_file()
    seen = siray("status", fox, "-o", str(tmp_path / "st"), "--name-template", template)
    assert seen.exit_code == 0, seen
    assert (tmp_path / "st" / "2_fox.png").is_file()
    # the setting, where no flag is given
    assert siray("config", "set", "name_template", "{name}-{n}.{ext}").exit_code == 0
    assert siray("download", fox, "-o", str(tmp_path / "set")).exit_code == 0
    assert [p.name for p in (tmp_path / "set").iterdir()] == ["fox-1.png"]


def test_an_unknown_field_is_refused_before_anything_is_paid(siray, emu, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", {"prompt": "names never"})
    before = created(emu)
    out = str(tmp_path / "out")
    for args in (
        ["run", MODEL, "names never", "-o", out, "--name-template", "{foo}.{ext}"],
        ["run", "--batch", str(jobs), "-m", MODEL, "-o", out, "--name-template", "{foo}"],
        ["download", "image_x", "-o", out, "--name-template", "{foo}"],
        ["status", "image_x", "-o", out, "--name-template", "{foo}"],
        ["config", "set", "name_template", "{foo}"],
    ):
        result = siray(*args)
        assert result.exit_code == 2, (args, result)
        assert "unknown field {foo}" in result.stderr and "Traceback" not in result.stderr
    variable = siray("run", MODEL, "names never", env={"SIRAY_NAME_TEMPLATE": "{foo}"})
    assert variable.exit_code == 2 and "unknown field {foo}" in variable.stderr
    assert created(emu) == before


def test_clashes_are_refused_before_anything_is_paid(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "jobs.jsonl", {"prompt": "names clash 1"}, {"prompt": "names clash 2"}
    )
    out = tmp_path / "out"
    same = siray(
        "run", "--batch", str(jobs), "-m", MODEL, "-o", str(out), "--name-template", "{model}"
    )
    assert same.exit_code == 2, same
    assert "line 2: --name-template '{model}' names its files as it names those of line 1" in (
        same.stderr
    )
    # a file already there, that a line's template would name
    out.mkdir(exist_ok=True)
    (out / "owl.png").write_bytes(b"mine")
    owl = write_jobs(tmp_path / "owl.jsonl", {"prompt": "names owl", "name": "owl"})
    there = siray(
        "run", "--batch", str(owl), "-m", MODEL, "-o", str(out), "--name-template", "{name}.{ext}"
    )
    assert there.exit_code == 2, there
    assert f"line 1: {out / 'owl.png'} exists" in there.stderr
    # (by prompt: the emulator is shared, and another test's delayed create may land meanwhile)
    assert not any(created(emu, p) for p in ("names clash 1", "names clash 2", "names owl"))
    assert (out / "owl.png").read_bytes() == b"mine"
    # a template that tells the lines apart runs them
    apart = siray(
        "run", "--batch", str(jobs), "-m", MODEL, "-o", str(out), "--name-template", "{line}"
    )
    assert apart.exit_code == 0, apart
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "2.png", "owl.png"]
