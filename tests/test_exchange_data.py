"""The exchange's shared data rules (pytest_axiomperf.exchange.data)."""

from __future__ import annotations

import json

from pytest_axiomperf.exchange.data import OrderBook, balance, holdings


def test_wallet_answers_are_deterministic_and_validated() -> None:
    status, body = balance("So1abc")
    assert status == 200
    assert balance("So1abc") == (status, body)
    assert body["sol"] == body["lamports"] / 1e9
    assert balance("So1abd")[1]["lamports"] != body["lamports"]
    status, held = holdings("So1abc")
    assert status == 200 and held == holdings("So1abc")[1]
    assert 1 <= len(held["tokens"]) <= 4
    assert balance("not/valid") == (
        400,
        {"error": "address must be 1-64 letters or digits", "status": 400},
    )
    assert holdings("x" * 65)[0] == 400


def test_order_book_validates_counts_and_forgets_the_oldest() -> None:
    book = OrderBook(limit=2)
    for amount in (1, 2, 3):
        status, order = book.create(json.dumps({"token": "SOL", "side": "buy", "amount": amount}))
        assert status == 201 and order["amount"] == amount
    assert len(book) == 2
    assert book.get("ord-00000001")[0] == 404  # forgotten
    assert book.get("ord-00000003")[1]["amount"] == 3
    assert book.create(b"{")[0] == 400
    status, error = book.create(json.dumps({"token": "NOPE", "side": "buy", "amount": 1}))
    assert status == 400 and "unknown token 'NOPE'" in error["error"]
    book.clear()
    assert len(book) == 0
    assert book.create(json.dumps({"token": "USDC", "side": "sell", "amount": 5}))[1]["id"] == (
        "ord-00000001"
    )
