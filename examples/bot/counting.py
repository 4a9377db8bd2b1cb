"""What both bots share: counting handled updates, so tests can wait for N of them."""

from __future__ import annotations

import asyncio


class UpdateCounter:
    """Counts handled updates; ``await wait_for_updates(n)`` returns once ``n`` were handled."""

    def __init__(self) -> None:
        self.updates = 0
        self._waiting: tuple[int, asyncio.Event] | None = None

    def counted(self) -> None:
        """Call once per handled update."""
        self.updates += 1
        if self._waiting is not None and self.updates >= self._waiting[0]:
            self._waiting[1].set()

    async def wait_for_updates(self, n: int, timeout: float = 15.0) -> None:
        """Wait until ``n`` updates have been handled (``TimeoutError`` after ``timeout`` s)."""
        event = asyncio.Event()
        self._waiting = (n, event)
        if self.updates >= n:
            event.set()
        await asyncio.wait_for(event.wait(), timeout)
