"""WebSocketClient speaks the room protocol: join, leave, room handlers, delivery latency."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_axiomperf import WebSocketClient
from pytest_axiomperf.exchange import ExchangeSimulator
from pytest_axiomperf.tracker import WEBSOCKET_LATENCY
from pytest_axiomperf.websocket import DELIVERY_TAG, ERR_UNKNOWN, room_kind


@pytest.fixture
def exchange(axiom_exchange: ExchangeSimulator) -> Iterator[ExchangeSimulator]:
    """The session's exchange, back to its default profile after the test."""
    yield axiom_exchange
    axiom_exchange.reset()


def make_client(exchange: ExchangeSimulator, **options: Any) -> WebSocketClient:
    return WebSocketClient(exchange.ws_url, token=exchange.token, **options)


@pytest.mark.asyncio
async def test_room_handler_gets_pushes_and_latency_is_timed_from_emitted_at(
    exchange: ExchangeSimulator,
) -> None:
    exchange.configure(latency=0.2, push_rate=20)
    pushes: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    async with make_client(exchange) as ws:
        await ws.join("v:Wallet1", pushes.put)
        got = [await asyncio.wait_for(pushes.get(), 5) for _ in range(4)]
        assert ws.rooms == ["v:Wallet1"]
    assert all(p["room"] == "v:Wallet1" and p["content"]["maker_address"] == "Wallet1" for p in got)
    delivery = ws.tracker.stats(WEBSOCKET_LATENCY, DELIVERY_TAG)
    assert delivery.count >= 4 and delivery.min >= 0.19
    assert ws.stats.unknown == 0 and ERR_UNKNOWN not in ws.tracker.errors


@pytest.mark.asyncio
async def test_rooms_without_handler_go_to_receive_and_leave_stops_them(
    exchange: ExchangeSimulator,
) -> None:
    exchange.configure(push_rate=50)
    async with make_client(exchange) as ws:
        await ws.subscribe(["SOL"])
        await ws.join("new_pairs")
        push = await ws.receive(kind=room_kind("new_pairs"))
        assert push["content"]["token_ticker"] and push["seq"] >= 1
        assert (await ws.receive(kind="token_update"))["token"] == "SOL"
        await ws.leave("new_pairs")
        # Answered after every push sent before the leave was handled: those are queued now.
        await ws.ping()
        for _ in range(1_000):
            try:
                await ws.receive(timeout=0.01, kind=room_kind("new_pairs"))
            except TimeoutError:
                break
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.3, kind=room_kind("new_pairs"))
        assert ws.rooms == []


@pytest.mark.asyncio
async def test_rooms_are_joined_again_after_a_reconnect(exchange: ExchangeSimulator) -> None:
    exchange.configure(ws_disconnect_every=5, push_rate=100)
    seqs: list[int] = []
    enough = asyncio.Event()

    async def on_push(push: dict[str, Any]) -> None:
        seqs.append(push["seq"])
        if len(seqs) >= 8:
            enough.set()

    async with make_client(exchange, reconnect_delay=0.01) as ws:
        await ws.join("new_pairs", on_push)
        await asyncio.wait_for(enough.wait(), 5)
        assert ws.stats.reconnects >= 1
    # A new connection's room starts again at 1: the pushes came from a second join.
    assert seqs[:5] == [1, 2, 3, 4, 5] and seqs[5] == 1


def test_join_wants_a_room_name() -> None:
    ws = WebSocketClient("ws://127.0.0.1:1/ws")
    with pytest.raises(ValueError, match="room must be a non-empty str"):
        asyncio.run(ws.join(""))
