"""The embedded exchange's data rules: one implementation for every way it is served.

Deterministic balances and token holdings of a wallet, order validation, and the
book of created orders, as plain functions answering ``(status, JSON body)``.
The aiohttp application (`pytest_axiomperf.exchange.app`) and the respx router
(`pytest_axiomperf.respx_api`) both answer from here, so the two cannot drift
apart. Standard library only: the respx router needs no aiohttp for it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ADDRESS",
    "BY_MINT",
    "MAX_BODY",
    "MAX_ORDERS",
    "TOKENS",
    "Answer",
    "OrderBook",
    "Token",
    "balance",
    "digest",
    "error_body",
    "holdings",
    "lamports",
]

#: Largest request body accepted (bytes); a larger one is answered 413.
MAX_BODY = 64 * 1024
#: Orders remembered; past it the oldest are forgotten, so long load tests stay bounded.
MAX_ORDERS = 100_000

#: A wallet address as the exchange accepts it.
ADDRESS = re.compile(r"[A-Za-z0-9]{1,64}")
_BAD_ADDRESS = "address must be 1-64 letters or digits"

#: An answer: the HTTP status and the JSON body.
Answer = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Token:
    """A token the exchange trades."""

    symbol: str
    mint: str
    decimals: int
    price: float


TOKENS: dict[str, Token] = {
    t.symbol: t
    for t in (
        Token("SOL", "So11111111111111111111111111111111111111112", 9, 150.0),
        Token("USDC", "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", 6, 1.0),
        Token("BONK", "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263", 5, 0.00002),
        Token("JUP", "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN", 6, 0.8),
        Token("WIF", "EKpQGSJtjMFqKZ9KQanSqYXRcF8fBopzLHYxdM65zcjm", 6, 2.0),
    )
}
"""The tokens ``POST /orders`` accepts, by symbol (orders may also name the mint)."""

#: The same tokens, by mint address.
BY_MINT = {t.mint: t for t in TOKENS.values()}


def error_body(status: int, message: str) -> dict[str, Any]:
    """The JSON body of every error the exchange answers."""
    return {"error": message, "status": status}


def digest(kind: str, key: str) -> int:
    """A stable 64-bit number derived from ``kind`` and ``key`` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(f"{kind}:{key}".encode()).digest()[:8], "big")


def lamports(address: str) -> int:
    """The wallet's deterministic SOL balance in lamports (the same on every route)."""
    return digest("balance", address) % (1_000 * 10**9)


def balance(address: str) -> Answer:
    """``GET /balance/{address}``: the wallet's deterministic SOL balance."""
    if not ADDRESS.fullmatch(address):
        return 400, error_body(400, _BAD_ADDRESS)
    amount = lamports(address)
    return 200, {"address": address, "lamports": amount, "sol": amount / 1e9}


def holdings(address: str) -> Answer:
    """``GET /tokens/{address}``: the wallet's deterministic token holdings."""
    if not ADDRESS.fullmatch(address):
        return 400, error_body(400, _BAD_ADDRESS)
    seed = digest("tokens", address)
    catalog = sorted(TOKENS)
    held = [catalog[(seed >> (8 * i)) % len(catalog)] for i in range(1 + seed % 4)]
    tokens = []
    for symbol in sorted(set(held)):
        token = TOKENS[symbol]
        raw = digest(f"amount:{symbol}", address) % (10**6 * 10**token.decimals)
        tokens.append(
            {
                "token": symbol,
                "mint": token.mint,
                "decimals": token.decimals,
                "amount": raw / 10**token.decimals,
                "price": token.price,
            }
        )
    return 200, {"address": address, "tokens": tokens}


def _positive(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


class OrderBook:
    """The orders one exchange created (``POST /orders``, ``GET /orders/{id}``).

    Every order fills at once; ids count up (``ord-00000001``); past ``limit``
    orders the oldest are forgotten.
    """

    def __init__(self, limit: int = MAX_ORDERS) -> None:
        """An empty book remembering at most ``limit`` orders."""
        self.limit = limit
        self._orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._seq = 0
        #: Tokens listed while the exchange runs (new pairs), by mint; the newest `limit`.
        self.listed: OrderedDict[str, Token] = OrderedDict()

    def __len__(self) -> int:
        """Orders remembered."""
        return len(self._orders)

    def clear(self) -> None:
        """Forget every order and restart the ids."""
        self._orders.clear()
        self._seq = 0
        self.listed.clear()

    def list_token(self, token: Token) -> None:
        """Make a newly listed `token` tradable (by its mint)."""
        self.listed[token.mint] = token
        if len(self.listed) > self.limit:
            self.listed.popitem(last=False)

    def create(self, raw: bytes | str) -> Answer:
        """``POST /orders`` with the raw request body: 201 and the filled order, or 400."""
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return 400, error_body(400, f"body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return 400, error_body(400, "body must be a JSON object")
        name = body.get("token")
        token = (
            (TOKENS.get(name) or BY_MINT.get(name) or self.listed.get(name))
            if isinstance(name, str)
            else None
        )
        if token is None:
            return 400, error_body(400, f"unknown token {name!r}; known: {', '.join(TOKENS)}")
        side = body.get("side")
        if side not in ("buy", "sell"):
            return 400, error_body(400, f"side must be 'buy' or 'sell', got {side!r}")
        amount = body.get("amount")
        if not _positive(amount):
            return 400, error_body(400, f"amount must be a number > 0, got {amount!r}")
        price = body.get("price", token.price)
        if not _positive(price):
            return 400, error_body(400, f"price must be a number > 0, got {price!r}")
        self._seq += 1
        order = {
            "id": f"ord-{self._seq:08d}",
            "status": "filled",
            "token": token.symbol,
            "mint": token.mint,
            "side": side,
            "amount": amount,
            "price": price,
            "timestamp": time.time(),
        }
        self._orders[order["id"]] = order
        while len(self._orders) > self.limit:
            self._orders.popitem(last=False)
        return 201, order

    def get(self, order_id: str) -> Answer:
        """``GET /orders/{order_id}``: 200 and the order, or 404."""
        order = self._orders.get(order_id)
        if order is None:
            return 404, error_body(404, f"unknown order id {order_id!r}")
        return 200, order
