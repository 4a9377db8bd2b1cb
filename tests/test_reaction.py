"""Scenarios on the embedded exchange and reaction times measured by it.

Each user file runs in a pytester subprocess against the real exchange; the
user's bot (a stand-in answering after an injected delay) joins the feeds and
orders over REST or ``/api/send-transaction``. Timing assertions rely only on
injected, generous differences.
"""

from __future__ import annotations

import json
import math

import pytest

from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.exchange.scenario import (
    Scenario,
    bursts,
    constant,
    listing,
    poisson,
    price_spike,
    ramp,
)

BOT = '''
import asyncio
import base64
import json

import aiohttp
from websockets.asyncio.client import connect

from pytest_axiomperf.exchange.reactions import b58decode


class Bot:
    """Answers each scenario event after `delay` s (except every `skip`-th), recording pushes."""

    def __init__(self, exchange, *, delay=0.0, skip=0, rooms=("new_pairs",), tokens=(),
                 via="orders"):
        self.exchange, self.delay, self.skip, self.via = exchange, delay, skip, via
        self.rooms, self.tokens = rooms, tokens
        self.seen = []
        self.updates = []
        self._tasks = set()

    async def __aenter__(self):
        # One paced push at the join (before the pong, dropped), then none for 100 s:
        # everything after it is the scenario's.
        self.exchange.configure(push_rate=0.01)
        headers = {"Authorization": f"Bearer {self.exchange.token}"}
        self.http = aiohttp.ClientSession(headers=headers)
        self.ws = await connect(self.exchange.ws_url, additional_headers=headers, proxy=None)
        for room in self.rooms:
            await self.ws.send(json.dumps({"action": "join", "room": room}))
        if self.tokens:
            await self.ws.send(json.dumps({"type": "subscribe", "tokens": list(self.tokens)}))
        # Handled in order: the pong says the joins are in force.
        await self.ws.send(json.dumps({"type": "ping", "timestamp": 0}))
        while json.loads(await asyncio.wait_for(self.ws.recv(), 5)).get("type") != "pong":
            pass
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc):
        self.reader.cancel()
        for task in list(self._tasks):
            await task
        await self.ws.close()
        await self.http.close()

    async def run(self, seconds):
        await asyncio.sleep(seconds)

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            token = None
            if msg.get("event") == "listing":
                token = msg["content"]["token_address"]
            elif msg.get("event") == "price_spike":
                token = msg.get("token") or msg["room"]
            elif msg.get("type") == "token_update":
                self.updates.append(msg)
            if token is None:
                continue
            self.seen.append(msg)
            if self.skip and len(self.seen) % self.skip == 0:
                continue
            task = asyncio.ensure_future(self._answer(token))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, token):
        await asyncio.sleep(self.delay)
        base = self.exchange.base_url
        if self.via == "orders":
            body = {"token": token, "side": "buy", "amount": 1}
            async with self.http.post(base + "/orders", json=body) as response:
                assert response.status == 201, await response.text()
        else:
            mint = b58decode(token) if len(token) > 30 else token.encode()
            tx = base64.b64encode(b"header" + mint + b"signature").decode()
            async with self.http.post(base + "/api/send-transaction",
                                      json={"signedTransaction": tx}) as response:
                assert response.status == 200, await response.text()
'''

INI = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
"""


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(bot=BOT, test_user=source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


REACTIONS = """
import pytest
from bot import Bot
from pytest_axiomperf.exchange.scenario import constant, listing, price_spike

LISTINGS = dict(listings=constant(rate=20, duration=0.5), answer_within=0.3, seed=1)


@pytest.mark.latency_budget(metric="reaction_latency", tag="listing", p50="2s", min_samples=10,
                            max_missed=0)
async def test_answered_listings_pass(axiom_exchange):
    async with Bot(axiom_exchange, delay=0.01) as bot:
        plan = axiom_exchange.scenario(**LISTINGS)
        await bot.run(plan.duration + 0.5)
    assert len(bot.seen) == 10


@pytest.mark.latency_budget(metric="reaction_latency", p50="5ms")
async def test_slow_bot_breaks_the_reaction_budget(axiom_exchange):
    async with Bot(axiom_exchange, delay=0.1) as bot:
        plan = axiom_exchange.scenario(**LISTINGS)
        await bot.run(plan.duration + 0.5)


@pytest.mark.latency_budget(metric="reaction_latency", max_missed=0)
async def test_missed_listings_break_max_missed(axiom_exchange):
    async with Bot(axiom_exchange, skip=2) as bot:
        plan = axiom_exchange.scenario(**LISTINGS)
        await bot.run(plan.duration + 0.6)


@pytest.mark.latency_budget(metric="reaction_latency", max_missed=5, min_samples=5)
async def test_misses_within_max_missed_pass(axiom_exchange):
    async with Bot(axiom_exchange, skip=2) as bot:
        plan = axiom_exchange.scenario(**LISTINGS)
        await bot.run(plan.duration + 0.6)


@pytest.mark.latency_budget(metric="reaction_latency", tag="price_spike", p99="2s",
                            min_samples=2, max_missed=0)
async def test_price_spikes_answered_by_transactions(axiom_exchange):
    events = [price_spike(0.1, "SOL", 5.0), price_spike(0.3, "BONK", -20.0)]
    async with Bot(axiom_exchange, rooms=(), tokens=("SOL", "BONK"), via="tx") as bot:
        plan = axiom_exchange.scenario(events=events, answer_within=0.5)
        await bot.run(plan.duration + 0.3)
    assert [m["token"] for m in bot.seen] == ["SOL", "BONK"]
    assert bot.seen[0]["price"] == pytest.approx(150.0 * 1.05)


@pytest.mark.latency_budget(metric="reaction_latency", tag="price_spike", min_samples=1,
                            p99="2s", max_missed=0)
async def test_price_spike_in_the_mint_room_answered_by_an_order(axiom_exchange):
    mint = "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263"
    async with Bot(axiom_exchange, rooms=(mint,)) as bot:
        plan = axiom_exchange.scenario(events=[price_spike(0.1, mint, 50)])
        await bot.run(plan.duration + 0.3)
    assert [m["room"] for m in bot.seen] == [mint]


@pytest.mark.latency_budget(metric="reaction_latency", p99="1s")
async def test_nobody_listening_is_no_sample_not_a_pass(axiom_exchange):
    plan = axiom_exchange.scenario(events=[listing(0.0)])
    import asyncio
    await asyncio.sleep(plan.duration + 0.1)
"""


def test_reaction_latency_budgets_and_missed_events(pytester: pytest.Pytester) -> None:
    """Venue-measured reactions reach the budget; missed events are counted and bounded."""
    result = _run(pytester, REACTIONS, "--axiom-perf", "-rf", "--axiom-perf-html=report.html")
    result.assert_outcomes(passed=4, failed=3)
    html = (pytester.path / "report.html").read_text()
    # The plot draws latency bounds only: a count of missed events is no line in seconds.
    assert "p50 budget" in html and "missed budget" not in html
    result.stdout.fnmatch_lines(
        [
            "*test_slow_bot_breaks_the_reaction_budget*",
            "*latency budget: reaction_latency p50 = *ms > 5.00ms*",
            "*test_missed_listings_break_max_missed*",
            "*latency budget: reaction_latency missed = 5 > 0 events*",
            "*test_nobody_listening_is_no_sample_not_a_pass*",
            "*latency budget: reaction_latency: 0 samples recorded*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*FAIL*test_missed_listings_break_max_missed",
            "*budgets: reaction_latency missed 5 > 0 events",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*::test_missed_listings_break_max_missed",
            "*Scenario reactions (10 of 10 events emitted*",
            "*event*answered*missed*pending*unheard*",
            "*listing*5*5*0*0*",
            "*::test_nobody_listening_is_no_sample_not_a_pass",
            "*Scenario reactions (1 of 1 events emitted*",
            "*event*answered*missed*pending*unheard*",
            "*listing*0*0*0*1*-*-*",
        ]
    )


KINDS = """
import asyncio
import pytest
from bot import Bot
from pytest_axiomperf.exchange.scenario import Scenario, bursts, constant, listing, poisson, ramp

STAGES = {
    "constant": constant(rate=40, duration=0.5),
    "poisson": poisson(rate=40, duration=0.5),
    "bursts": bursts(rate=100, duration=0.6, on=0.1, off=0.2),
    "ramp": ramp(rate=10, end_rate=80, duration=0.5),
}


@pytest.mark.parametrize("kind", sorted(STAGES))
async def test_listings_follow_the_schedule(axiom_exchange, kind):
    async with Bot(axiom_exchange) as bot:
        plan = axiom_exchange.scenario(listings=STAGES[kind], events=[listing(0.05)], seed=7)
        await bot.run(plan.duration + 0.3)
    expected = [t for t, _ in plan.schedule()]
    got = [m["emitted_at"] for m in bot.seen]
    assert len(got) == len(expected) > 5
    # The exchange plays the schedule's times exactly (intended times; lateness is its own).
    start = got[0] - expected[0]
    assert max(abs(g - start - e) for g, e in zip(got, expected)) < 1e-6
    assert [m["seq"] for m in bot.seen] == list(range(1, len(expected) + 1))


async def test_pushes_follow_the_push_schedule(axiom_exchange):
    async with Bot(axiom_exchange, rooms=(), tokens=("SOL",)) as bot:
        plan = axiom_exchange.scenario(pushes=bursts(rate=200, duration=0.5, on=0.05, off=0.2),
                                       delay=0.2)
        await bot.run(plan.duration + 0.4)
    # The stream's own first push (at the subscription) may come after the pong: skip it.
    times = [u["timestamp"] for u in bot.updates if u["seq"] >= 2]
    scheduled = plan.push_times()
    assert len(times) == len(scheduled) == 20
    start = times[0] - scheduled[0]
    assert max(abs(t - start - s) for t, s in zip(times, scheduled)) < 1e-6
    # Inside a burst pushes are 5 ms apart; between bursts 0.2 s of silence.
    assert round(scheduled[10] - scheduled[9], 4) == 0.205
"""


def test_every_scenario_kind_is_played_on_schedule(pytester: pytest.Pytester) -> None:
    """constant, Poisson, bursts and ramps of listings, a scheduled listing, pushes in bursts."""
    _run(pytester, KINDS).assert_outcomes(passed=5)


BAD = """
import re

import pytest
from pytest_axiomperf.errors import ConfigError
from pytest_axiomperf.exchange.scenario import constant, listing, poisson


@pytest.mark.parametrize("kwargs, culprit", [
    (dict(listings=constant(rate=0, duration=1)), "listings[0]: rate must be > 0"),
    (dict(listings=constant(rate=-5, duration=1)), "listings[0]: rate must be > 0"),
    (dict(events=[{"kind": "rug_pull", "at": 1}]), "events[0]: unknown event kind 'rug_pull'"),
    (dict(listings=[constant(1, 2), poisson(1, 1, start=1)]),
     "listings[1] starts at 1 s, before listings[0] ends (2 s)"),
    (dict(listings=constant(1, 1), speed=0), "speed must be > 0"),
    (dict(), "nothing to do"),
    (dict(events=[listing(i / 100) for i in range(3000)]), "3000 scheduled events are too many"),
])
def test_bad_scenarios_name_the_culprit(axiom_exchange, kwargs, culprit):
    with pytest.raises(ConfigError, match=re.escape(culprit)):
        axiom_exchange.scenario(**kwargs)
    assert axiom_exchange.active_scenario is None


@pytest.mark.latency_budget(metric="api_response_times", max_missed=0)
def test_max_missed_needs_the_reaction_metric():
    pass
"""


def test_bad_input_is_refused_before_anything_runs(pytester: pytest.Pytester) -> None:
    result = _run(pytester, BAD, "--axiom-perf")
    result.stdout.fnmatch_lines(
        ["*test_max_missed_needs_the_reaction_metric*max_missed counts missed market events*"]
    )
    assert result.ret != 0
    pytester.makepyfile(test_user=BAD.split("@pytest.mark.latency_budget")[0])
    pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=120).assert_outcomes(passed=7)


def test_schedules_are_seeded_and_reproducible() -> None:
    def times(seed: int) -> list[float]:
        plan = Scenario.build(listings=poisson(50, 2.0), seed=seed)
        return [t for t, _ in plan.schedule()]

    assert times(3) == times(3) and times(3) != times(4)
    assert 60 < len(times(3)) < 140  # 100 expected; a seeded draw, not a timing
    assert [t for t, _ in Scenario.build(listings=constant(4, 1)).schedule()] == [
        0.0,
        0.25,
        0.5,
        0.75,
    ]
    ramped = [t for t, _ in Scenario.build(listings=ramp(10, 90, 1.0)).schedule()]
    assert len(ramped) == 50 and ramped[1] - ramped[0] > ramped[-1] - ramped[-2]
    burst = Scenario.build(listings=bursts(10, 2.0, on=0.5, off=0.5)).schedule()
    assert all(t % 1.0 < 0.5 for t, _ in burst) and len(burst) == 10
    fast = Scenario.build(listings=constant(4, 1), events=[listing(2.0)], speed=2)
    assert [t for t, _ in fast.schedule()][-1] == 1.0 and fast.duration == 1.0
    assert math.isclose(Scenario.build(events=[price_spike(1, "SOL", 5)]).duration, 1.0)


def test_scenarios_round_trip_as_json() -> None:
    plan = Scenario.build(
        listings=[constant(5, 1), bursts(10, 1, on=0.1, off=0.1, start=2)],
        pushes=ramp(1, 2, 1),
        events=[listing(0.5), price_spike(0.7, "SOL", -3)],
        seed=9,
    )
    assert Scenario.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    with pytest.raises(ConfigError, match="unknown option"):
        Scenario.from_dict({"listing": []})


LATE = """
import asyncio
import json

from websockets.asyncio.client import connect

from pytest_axiomperf.exchange.scenario import constant


async def test_a_scenario_faster_than_the_exchange(axiom_exchange):
    axiom_exchange.configure(push_rate=0.01)
    headers = {"Authorization": f"Bearer {axiom_exchange.token}"}
    async with connect(axiom_exchange.ws_url, additional_headers=headers, proxy=None,
                       max_queue=None) as ws:
        await ws.send(json.dumps({"action": "join", "room": "new_pairs"}))
        await ws.send(json.dumps({"type": "ping", "timestamp": 0}))
        while json.loads(await ws.recv()).get("type") != "pong":
            pass
        # 10,000 listings in 0.1 s: more than the exchange can emit in that time.
        plan = axiom_exchange.scenario(listings=constant(rate=100_000, duration=0.1))
        stamps = []
        while len(stamps) < 10_000:
            push = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if push.get("event") == "listing":
                stamps.append(push["emitted_at"])
    # The schedule is kept, not stretched: each push carries its intended time.
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(abs(g - 1e-5) for g in gaps) < 1e-6
    assert plan.duration == 0.1
"""


def test_an_exchange_that_cannot_keep_up_says_so(pytester: pytest.Pytester) -> None:
    """Its lateness is reported (table, warning); the events keep their intended times."""
    result = _run(pytester, LATE, "--axiom-perf")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*the exchange emitted scenario events late (p99 *ms, max *ms): it could not keep "
            "up with the scenario on this machine*",
            "*Scenario reactions (10000 of 10000 events emitted; exchange lateness p99 *",
        ]
    )


REPLAY = """
import asyncio
import os
import subprocess
import sys

import pytest
from bot import Bot
from pytest_axiomperf.exchange.scenario import constant, price_spike, read_feed
from pytest_axiomperf.record import record_feed


def record_cli(exchange, out, seconds):
    env = dict(os.environ, AXIOM_AUTH_TOKEN=exchange.token)
    main = "from pytest_axiomperf.cli import main; raise SystemExit(main())"
    command = [sys.executable, "-c", main, "record", exchange.ws_url, "--out", str(out),
               "--seconds", str(seconds), "--subscribe", "SOL"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_the_record_command(axiom_exchange, tmp_path):
    axiom_exchange.configure(push_rate=50)
    done = record_cli(axiom_exchange, tmp_path / "feed.jsonl", 0.5)
    assert done.returncode == 0, done.stderr
    assert "messages in 0.5 s written to" in done.stdout
    feed = read_feed(tmp_path / "feed.jsonl")
    assert len(feed) > 5 and all(m["type"] in ("subscribed", "token_update") for _, m in feed)
    refused = record_cli(axiom_exchange, tmp_path / "x.jsonl", 0)
    assert refused.returncode == 2 and "--seconds must be > 0" in refused.stderr


@pytest.mark.latency_budget(metric="reaction_latency", tag="listing", max_missed=0,
                            min_samples=20, p99="2s")
async def test_record_then_replay_at_twice_the_speed(axiom_exchange, tmp_path):
    axiom_exchange.configure(push_rate=0.01)
    feed = tmp_path / "feed.jsonl"
    recorder = asyncio.ensure_future(record_feed(
        axiom_exchange.ws_url, feed, 1.5, rooms=["new_pairs"], tokens=["SOL"],
        token=axiom_exchange.token))
    axiom_exchange.scenario(listings=constant(rate=40, duration=0.5),
                            events=[price_spike(0.2, "SOL", 10)], seed=3, delay=0.5)
    assert await recorder > 20
    recorded = read_feed(feed)
    listings = [(t, m) for t, m in recorded if m.get("event") == "listing"]
    assert len(listings) == 20
    assert any(m.get("event") == "price_spike" for _, m in recorded)
    axiom_exchange.reactions(end=True)  # the recording's scenario is over

    async with Bot(axiom_exchange, tokens=("SOL",)) as bot:
        plan = axiom_exchange.scenario(replay=feed, speed=2.0)
        await bot.run(plan.duration + 0.4)
    replayed = [m["emitted_at"] for m in bot.seen if m.get("event") == "listing"]
    assert len(replayed) == 20
    # Inter-arrival times are the recording's, halved.
    want = [(b[0] - a[0]) / 2 for a, b in zip(listings, listings[1:])]
    got = [b - a for a, b in zip(replayed, replayed[1:])]
    assert max(abs(g - w) for g, w in zip(got, want)) < 1e-6
    assert any(u.get("event") == "price_spike" for u in bot.seen)


@pytest.mark.parametrize("text, culprit", [
    ('{"t": 0, "message": {}}\\nnot json\\n', "line 2 is not JSON"),
    ('{"message": {"a": 1}}\\n', "line 1 has no time"),
    ('{"t": 1, "message": {}}\\n{"t": 0.5, "message": {}}\\n', "line 2 goes back in time"),
    ('{"t": 1, "message": 5}\\n', "line 1 must be"),
    ("", "no messages"),
])
def test_bad_feeds_name_the_line(axiom_exchange, tmp_path, text, culprit):
    from pytest_axiomperf.errors import ConfigError
    path = tmp_path / "feed.jsonl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=culprit):
        axiom_exchange.scenario(replay=path)
"""


def test_record_and_replay_round_trip(pytester: pytest.Pytester) -> None:
    """axiomperf record captures the exchange's feed; replay keeps its timing at 2x."""
    result = _run(pytester, REPLAY, "--axiom-perf")
    result.assert_outcomes(passed=7)


def test_reactions_under_xdist(pytester: pytest.Pytester) -> None:
    """Each worker's exchange times its own tests' reactions; budgets and misses as alone."""
    result = _run(pytester, REACTIONS, "--axiom-perf", "-n", "2")
    result.assert_outcomes(passed=4, failed=3)
    result.stdout.fnmatch_lines(["*reaction_latency missed = 5 > 0 events*"])
