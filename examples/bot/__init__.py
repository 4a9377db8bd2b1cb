"""A small async trading bot, written twice: the way the guide recommends, and naively.

`TradingBot` uses one pooled `OptimizedClient` for REST, a `WebSocketClient`
whose handlers run off the reader, and a bounded price history. `NaiveBot` opens
a new HTTP session per request, keeps every price it ever saw, and handles each
update inline in its reader loop. The examples' tests measure both.
"""

from bot.bot import TradingBot
from bot.naive import NaiveBot

__all__ = ["NaiveBot", "TradingBot"]
