"""The adaptive request rate (transport/pacing.py) on a fake clock, and against the emulator's
rate limit over loopback."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from helpers import NO_CERTIFICATES
from test_polling import FakeClock

from siray_cli.emulator.faults import Fault
from siray_cli.emulator.limits import RateLimit, key_of
from siray_cli.transport.bounds import retry_after
from siray_cli.transport.pacing import AdaptiveRate


def answer(status: int, retry: str | None = None) -> httpx.Response:
    return httpx.Response(status, headers={"Retry-After": retry} if retry is not None else {})


def sends(rate: AdaptiveRate, clock: FakeClock, count: int) -> list[float]:
    moments = []
    for _ in range(count):
        rate.acquire()
        moments.append(clock.now)
    return moments


def test_a_burst_up_to_the_rate_goes_at_once_and_any_second_stays_within_it():
    clock = FakeClock()
    rate = AdaptiveRate(5, clock=clock, sleep=clock.sleep)
    moments = sends(rate, clock, 5)
    assert moments == [0.0] * 5
    assert sends(rate, clock, 1) == [pytest.approx(1.0)]  # the sixth waits for the window
    clock.now = 1.5
    moments += [1.0, *sends(rate, clock, 6)]
    assert moments[6:10] == pytest.approx([1.5] * 4) and moments[10:] == pytest.approx([2.0, 2.5])
    for moment in moments:
        assert sum(1 for other in moments if moment <= other < moment + 1.0) <= 5


def test_a_throttle_slows_down_to_what_the_server_let_through_once_per_burst():
    clock = FakeClock()
    rate = AdaptiveRate(100, clock=clock, sleep=clock.sleep)
    sends(rate, clock, 40)  # a burst of 40: the server let 30 through, refused 10
    clock.now = 0.05
    for _ in range(10):
        rate.note(answer(429, "1"))
    assert rate.throttles == 1  # the answers to one burst are one signal, never compounded
    assert rate.rate == pytest.approx(0.9 * 30)
    # back to where the limit was within a second (slow start), then only a creep above it
    clock.now = 2.05
    rate.acquire()
    assert rate.rate == pytest.approx(30)
    clock.now = 7.05
    rate.acquire()
    assert rate.rate == pytest.approx(30 + 0.02 * 30 * 5)


def test_a_long_retry_after_holds_every_request_until_then_and_a_short_one_only_its_own():
    def first_send_after(*answers: httpx.Response) -> float:
        clock = FakeClock()
        rate = AdaptiveRate(100, clock=clock, sleep=clock.sleep)
        sends(rate, clock, 20)
        clock.now = 0.5
        for throttle in answers:
            rate.note(throttle)
        return sends(rate, clock, 1)[0]

    # a Retry-After within the one-second window: the retry waits it, the others only the rate
    assert first_send_after(answer(429, "1")) == first_send_after(answer(429)) == 1.0
    # "come back later": nothing goes before then
    assert first_send_after(answer(503, "3")) == pytest.approx(3.5)


def test_a_stray_throttle_at_a_low_rate_is_soon_forgotten():
    clock = FakeClock()
    rate = AdaptiveRate(100, clock=clock, sleep=clock.sleep)
    sends(rate, clock, 2)
    rate.note(answer(503))  # one of two requests in a second refused, far below the ceiling
    assert rate.rate == pytest.approx(1.0)
    clock.now = 8.0
    rate.acquire()
    assert rate.rate == pytest.approx(1.0 + 0.5 * 8)  # a creep above what was let through
    clock.now = 11.0  # ten seconds without a throttle: that limit is forgotten, and the rate
    rate.acquire()  # doubles every second back to the ceiling
    assert rate.rate == pytest.approx(5.0 * 2**3)
    clock.now = 13.0
    rate.acquire()
    assert rate.rate == 100


def test_a_second_with_nothing_let_through_leaves_the_spacing_to_the_retries():
    """A lone request refused, then its retries refused too: the server let nothing through, so
    there is no rate to come down to; the retries go at the retry layer's backoff, not one a
    second. The first request of a second that lets one through brings the rate down."""
    clock = FakeClock()
    rate = AdaptiveRate(100, clock=clock, sleep=clock.sleep)
    for attempt in range(5):
        assert sends(rate, clock, 1) == [pytest.approx(0.01 * attempt)]
        rate.note(answer(503))
        clock.now += 0.01
    assert rate.rate == 100 and rate.throttles == 1
    sends(rate, clock, 3)  # three more: two let through, one refused
    rate.note(answer(429))
    assert rate.rate == pytest.approx(0.9 * 2)


def test_a_lone_request_refused_after_others_went_through_is_retried_when_the_server_says():
    """One request at a time (a run: its create, then its looks): a look refused with
    `Retry-After: 0.05` is sent again 0.05 s later, as the server said, not a second later.
    Before, the create answered in the same second counted as let through, so the refusal set
    the rate to one a second (a run's looks after one 429 took a second each)."""
    clock = FakeClock()
    rate = AdaptiveRate(100, clock=clock, sleep=clock.sleep)
    assert sends(rate, clock, 1) == [0.0]  # the create, answered
    rate.note(answer(200))
    clock.now = 0.2
    for attempt in range(3):  # a look, refused twice, then let through
        assert sends(rate, clock, 1) == [pytest.approx(0.2 + 0.05 * attempt)]
        rate.note(answer(429, "0.05") if attempt < 2 else answer(200))
        clock.now += 0.05
    assert rate.rate == 100


def test_requests_one_at_a_time_that_several_went_through_before_do_teach_the_rate():
    """A batch's looks are often out one at a time, each answered in milliseconds: a refusal
    after several went through in the same second is the server's limit showing, so the rate
    comes down to it, lone as the refused request is (a CI run refused 7 looks of 12 under a
    limit of 8 a second when it did not)."""
    clock = FakeClock()
    rate = AdaptiveRate(100, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        sends(rate, clock, 1)
        rate.note(answer(200))
        clock.now += 0.1
    sends(rate, clock, 1)
    rate.note(answer(429, "0.2"))
    assert rate.rate == pytest.approx(0.9 * 5)


def test_many_requests_refused_slowly_with_none_let_through_bring_the_rate_down():
    """A server that refuses everything, answering after longer than the one-second window (a
    gateway whose upstream times out): nothing was let through, but the client had many requests
    out, so the rate comes down to the floor instead of sending the whole batch again."""
    clock = FakeClock()
    rate = AdaptiveRate(150, clock=clock, sleep=clock.sleep)
    sends(rate, clock, 64)
    clock.now = 1.5
    for _ in range(64):
        rate.note(answer(503))
    assert rate.rate == 1.0 and rate.throttles == 1
    assert sends(rate, clock, 2) == [1.5, pytest.approx(2.5)]


def test_other_answers_change_nothing_and_a_bad_retry_after_is_ignored():
    clock = FakeClock()
    rate = AdaptiveRate(10, clock=clock, sleep=clock.sleep)
    for status in (200, 404, 500, 502):
        rate.note(answer(status, "30"))
    assert rate.rate == 10 and rate.throttles == 0 and sends(rate, clock, 1) == [0.0]
    assert retry_after(answer(429, "soon")) is None
    assert retry_after(answer(429, "Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0  # a past date
    assert retry_after(answer(429, "86400")) == 30.0  # capped


def test_the_retry_and_the_pace_read_a_retry_after_alike(monkeypatch):
    """One reading of Retry-After (transport/bounds.py) for the retry of the request that got it
    and for the pace of all the others: whole and fractional seconds, an HTTP date in GMT, and
    one without a zone, which is GMT too, not the machine's time (httpx-retries read fractions as
    no Retry-After at all, and pacing read a zoneless date in local time)."""
    from email.utils import formatdate

    from siray_cli.transport.retries import _pause, read_retry

    monkeypatch.setenv("TZ", "America/New_York")  # five hours from GMT
    time.tzset()
    try:
        soon = formatdate(time.time() + 6, usegmt=True)
        zoneless = soon.replace("GMT", "-0000")
        expected = {"2": 2.0, "0.5": 0.5, soon: 6.0, zoneless: 6.0, "86400": 30.0, "soon": None}
        expected |= {"1" + "0" * 400: 30.0, "1e309": None, "1_0": None, "-1": None}
        for header, seconds in expected.items():
            throttle = answer(429, header)
            read = retry_after(throttle)
            assert read == (None if seconds is None else pytest.approx(seconds, abs=1.01)), header
            paused = _pause(read_retry(backoff=0.0).start().increment(), throttle)
            assert paused == (0.0 if read is None else pytest.approx(read, abs=0.01)), header
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_creates_go_before_looks_that_wait_longer():
    rate = AdaptiveRate(5)
    for _ in range(5):
        rate.acquire()  # the window is full for a second
    order: list[str] = []

    def send(name: str, first: bool) -> None:
        rate.acquire(first=first)
        order.append(name)

    looks = [threading.Thread(target=send, args=(f"look {n}", False)) for n in range(3)]
    for thread in looks:
        thread.start()
    time.sleep(0.1)  # the looks wait in line
    create = threading.Thread(target=send, args=("create", True))
    create.start()
    for thread in [*looks, create]:
        thread.join(5)
    assert order[0] == "create" and sorted(order[1:]) == ["look 0", "look 1", "look 2"]


def test_the_emulator_limits_each_key_and_never_its_own_endpoints_or_files():
    clock = FakeClock()
    limit = RateLimit(3, clock=clock)
    assert [limit.take("a") for _ in range(4)] == [None, None, None, 1]
    assert limit.take("b") is None  # per key
    clock.now = 0.5
    assert limit.take("a") == 1  # whole seconds, as HTTP says Retry-After
    clock.now = 1.01
    assert limit.take("a") is None and limit.refused == 2
    assert key_of("Bearer k1") == "k1" and key_of("API-KEY k1") == "k1"
    assert key_of("Key id:secret") == "id:secret"
    assert key_of("AWS4-HMAC-SHA256 Credential=x") is None and key_of("") is None


def test_a_rate_limited_emulator_answers_429_with_retry_after(make_emulator):
    server = make_emulator(rate_limit=2)
    env = server.environment()
    with httpx.Client(base_url=server.url, verify=NO_CERTIFICATES) as client:
        siray = {"Authorization": f"Bearer {env['SIRAY_API_KEY']}"}
        higgsfield = {"Authorization": f"Key {env['HF_KEY']}"}
        answers = [client.get("/v1/images/generations/async/none", headers=siray) for _ in range(3)]
        assert [a.status_code for a in answers] == [404, 404, 429]
        assert answers[-1].headers["Retry-After"] == "1"
        assert answers[-1].json()["error"]["code"] == "rate_limit_exceeded"
        hf = [client.get("/requests/none/status", headers=higgsfield) for _ in range(3)]
        assert hf[-1].status_code == 429 and "rate limit" in hf[-1].json()["detail"]
        assert client.get("/_emulator/stats").status_code == 200  # never limited
        # the --fault rules still come first
        server.state.faults.add(Fault(action="status", status=503, count=1))
        assert client.get("/requests/none/status", headers=higgsfield).status_code == 503


def test_a_retry_policy_that_could_not_judge_a_first_answer_alone_is_refused():
    """The first answer is judged by the policy's own methods and statuses, no Retry made yet
    (transport/retries.py): a policy whose empty sets would mean httpx-retries' defaults, or
    that could be exhausted before its first attempt, is refused where it is made."""
    from siray_cli.transport.retries import RetryPolicy, read_retry

    for bad in (
        {"methods": [], "statuses": [503]},
        {"methods": ["GET"], "statuses": []},
        {"methods": ["GET"], "statuses": [503], "total": 0},
        {"methods": ["GET"], "statuses": [503], "attempts_made": 1},
    ):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)
    retry = read_retry(backoff=0.0).start()  # what a first failure makes
    assert retry.allowed_methods == {"GET"} and 503 in retry.status_forcelist
    assert retry.attempts_made == 0 and not retry.is_exhausted()
