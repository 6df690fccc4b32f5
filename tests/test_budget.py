"""Spending caps: --max-cost and --max-tasks. No create is sent that would take the committed
total past the cap (concurrent workers racing for the last of it), lines left unsent are told
and can be sent later without paying twice, and a cap siray cannot price is refused first."""

from __future__ import annotations

import json

from helpers import HF, created, write_jobs
from helpers import HF_IMAGE as HF_MODEL
from helpers import Z_IMAGE as MODEL

# the emulator prices every Higgsfield image at 1.5 credits (0.094 usd)


def hf_jobs(tmp_path, prefix: str, count: int):
    return write_jobs(
        tmp_path / f"{prefix}.jsonl",
        *({"prompt": f"{prefix} {n}", "name": f"{prefix}{n}"} for n in range(count)),
    )


def records(result) -> list[dict]:
    return [json.loads(line) for line in result.lines]


def test_a_cap_falling_mid_batch_is_never_passed_by_racing_workers(siray, emu, tmp_path):
    jobs = hf_jobs(tmp_path, "capped", 8)
    before = created(emu)
    result = siray(
        "--provider", "higgsfield", "run", "--batch", str(jobs), "-m", HF_MODEL,
        "--concurrency", "8", "--max-cost", "5credits", "--json", env=HF,
    )  # fmt: skip
    assert result.exit_code == 1, result
    assert created(emu) == before + 3  # 3 x 1.5 = 4.5 credits; a 4th would make 6 > 5
    lines = [r for r in records(result) if r["type"] in ("result", "error")]
    unsent = [r for r in lines if r["status"] == "NOT_SENT"]
    assert len(unsent) == 5 and all(r["error"]["type"] == "over_budget" for r in unsent)
    assert "4.500 of 5 credits committed" in result.stderr
    assert "3 succeeded, 0 failed, 5 not sent (over the cap)" in result.stderr
    summary = records(result)[-1]
    assert (summary["type"], summary["failed"], summary["not_sent"]) == ("summary", 0, 5)
    # the hint, with a higher cap: the 5 lines are sent, the 3 done are not paid again
    hint = next(line for line in result.stderr.splitlines() if "not sent, over the cap" in line)
    command = hint.split("never paid again): ", 1)[1].replace("AMOUNT", "20credits")
    words = command.split()
    assert words[:3] == ["siray", "--provider", "higgsfield"]
    again = siray(*words[1:], env=HF)
    assert again.exit_code == 0, again
    assert created(emu) == before + 8


def test_siray_prices_come_from_the_profiles_table(siray, emu, tmp_path):
    assert siray("config", "set", "timeout", "600").exit_code == 0  # the file, made private
    config = siray("config", "path").stdout.strip()
    with open(config, "a", encoding="utf-8") as file:
        file.write(f'\n[profiles.default.prices]\n"{MODEL}" = 0.25\n')
    jobs = write_jobs(
        tmp_path / "priced.jsonl",
        *({"prompt": f"priced {n}", "inputs": {"size": "1024x768"}} for n in range(4)),
    )
    before = created(emu)
    result = siray("run", "--batch", str(jobs), "-m", MODEL, "--max-cost", "$0.60")
    assert result.exit_code == 1, result
    assert created(emu) == before + 2 and "0.50 of 0.60 usd committed" in result.stderr


def test_a_cap_siray_cannot_price_is_refused_before_anything_is_paid(siray, emu, tmp_path):
    jobs = write_jobs(tmp_path / "unpriced.jsonl", {"prompt": "x", "inputs": {"size": "1024x768"}})
    before = created(emu)
    for args in (
        ["run", "--batch", str(jobs), "-m", MODEL, "--max-cost", "1"],
        ["run", MODEL, "unpriced", "-i", "size=1024x768", "--max-cost", "1"],
    ):
        refused = siray(*args)
        assert refused.exit_code == 2, refused
        assert (
            "publishes no prices" in refused.stderr and "[profiles.NAME.prices]" in refused.stderr
        )
    for bad in ("lots", "5euro", "-1", "$3credits"):
        wrong = siray("run", MODEL, "x", "-i", "size=1024x768", "--max-cost", bad)
        assert wrong.exit_code == 2 and "is not an amount" in wrong.stderr, wrong
    assert created(emu) == before


def test_max_tasks_caps_the_submits_of_any_provider(siray, emu, tmp_path):
    jobs = write_jobs(
        tmp_path / "counted.jsonl",
        *({"prompt": f"counted {n}", "inputs": {"size": "1024x768"}} for n in range(4)),
    )
    before = created(emu)
    result = siray(
        "run", "--batch", str(jobs), "-m", MODEL, "--max-tasks", "2", "--concurrency", "4"
    )
    assert result.exit_code == 1, result
    assert created(emu) == before + 2 and "2 of 2 tasks" in result.stderr
    # a rerun follows the two tasks sent (they cost nothing now) and sends the other two
    again = siray("run", "--batch", str(jobs), "-m", MODEL, "--max-tasks", "2", "--resume")
    assert again.exit_code == 0, again
    assert created(emu) == before + 4


def test_a_single_request_over_the_cap_is_not_sent(siray, emu):
    before = created(emu)
    for command in ("run", "generate"):
        result = siray(
            "--provider", "higgsfield", command, HF_MODEL, f"too dear to {command}",
            "--max-cost", "0.05usd", env=HF,
        )  # fmt: skip
        assert result.exit_code == 1, result
        assert "not submitted: it would cost 0.094 usd" in result.stderr
    assert created(emu) == before
    fits = siray("--provider", "higgsfield", "run", HF_MODEL, "fits", "--max-cost", "2", env=HF)
    assert fits.exit_code == 0 and created(emu) == before + 1


def test_estimate_prices_a_batch_by_model_without_sending_anything(siray, emu, tmp_path):
    jobs = hf_jobs(tmp_path, "estimated", 4)
    before = created(emu)
    priced = siray(
        "--provider", "higgsfield", "estimate", "--batch", str(jobs), "-m", HF_MODEL, "--json",
        env=HF,
    )  # fmt: skip
    assert priced.exit_code == 0, priced
    document = priced.json()
    assert document["total"] == {"credits": 6.0, "usd": 0.376}
    [entry] = document["models"]
    assert (entry["model"], entry["lines"], entry["sent"]) == (HF_MODEL, 4, 4)
    assert created(emu) == before
    # Siray: from the profile's price table, else refused
    siray_jobs = write_jobs(tmp_path / "s.jsonl", {"prompt": "s", "inputs": {"size": "1024x768"}})
    unpriced = siray("estimate", "--batch", str(siray_jobs), "-m", MODEL)
    assert unpriced.exit_code == 2 and "publishes no prices" in unpriced.stderr
    assert siray("config", "set", "timeout", "600").exit_code == 0
    with open(siray("config", "path").stdout.strip(), "a", encoding="utf-8") as file:
        file.write(f'\n[profiles.default.prices]\n"{MODEL}" = 0.25\n')
    table = siray("estimate", "--batch", str(siray_jobs), "-m", MODEL, "--json")
    assert table.exit_code == 0 and table.json()["total"] == {"price": 0.25}, table
    both = siray("estimate", MODEL, "x", "--batch", str(siray_jobs))
    assert both.exit_code == 2 and "--batch takes every job from its file" in both.stderr


def test_the_history_records_what_capped_tasks_cost_and_totals_it(siray, emu, tmp_path):
    jobs = hf_jobs(tmp_path, "costed", 2)
    ran = siray(
        "--provider", "higgsfield", "run", "--batch", str(jobs), "-m", HF_MODEL,
        "--max-cost", "10credits", env=HF,
    )  # fmt: skip
    assert ran.exit_code == 0, ran
    single = siray("--provider", "higgsfield", "run", HF_MODEL, "costed alone", "--max-cost", "1")
    assert single.exit_code == 0, single
    costs = siray("history", "--cost", "--since", "1h", "--json").json()
    by_unit = {(c["model"], c["unit"]): (c["tasks"], c["cost"]) for c in costs["costs"]}
    assert by_unit[(HF_MODEL, "credits")] == (2, 3.0)
    assert by_unit[(HF_MODEL, "usd")] == (1, 0.094)
    assert costs["total"] == {"credits": 3.0, "usd": 0.094}
    listed = siray("history", "-n", "1", "--json").json()[0]
    assert listed["price"] == {"amount": 0.094, "unit": "usd"}
    table = siray("history", "--cost")
    assert table.exit_code == 0 and "total" in table.stdout
    assert siray("generate", HF_MODEL, "unpriced", env=HF).exit_code == 0
    told = siray("history", "--cost")  # what it leaves out is said, not silently undercounted
    assert "1 task of the period has no price and is not counted" in told.stderr, told
