"""Fault injection for the sandbox server: latency, 429 with Retry-After, 5xx, and dropped connections.

Decisions come from one seeded `random.Random`, so a given seed yields the same sequence of faults for the
same sequence of requests. Paths under `/_sandbox/` (health, admin) are never faulted.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class FaultSettings:
    """Per-server fault rates (each 0..1, drawn in the order drop, 429, 5xx) and latency in seconds.

    `retry_after` is the Retry-After header of a 429, or None to send none (the documented case outside SCIM).
    """

    latency: float = 0.0
    rate_429: float = 0.0
    retry_after: int | None = 1
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_5xx, self.rate_drop)
        if any(not 0.0 <= r <= 1.0 for r in rates) or sum(rates) > 1.0:
            raise ValueError("fault rates must each be within 0..1 and sum to at most 1")
        if self.latency < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise ValueError("latency and retry_after must not be negative")


class FaultInjector:
    """ASGI middleware that applies the current `FaultSettings` to every API request."""

    def __init__(self, app: ASGIApp, settings: FaultSettings | None = None) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self._settings = settings or FaultSettings()
        self._random = random.Random(self._settings.seed)

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(self, settings: FaultSettings | None = None, **changes: Any) -> FaultSettings:
        """Replace the settings (and reseed), or change some fields of the current ones."""
        with self._lock:
            base = settings if settings is not None else self._settings
            self._settings = replace(base, **changes) if changes else base
            self._random = random.Random(self._settings.seed)
            return self._settings

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self._settings), "injected": dict(self.counts)}

    def _decide(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            s = self._settings
            draw = self._random.random()
            if draw < s.rate_drop:
                fault = "drop"
            elif draw < s.rate_drop + s.rate_429:
                fault = "429"
            elif draw < s.rate_drop + s.rate_429 + s.rate_5xx:
                fault = self._random.choice(("500", "502", "503"))
            else:
                return None
            self.counts[fault] += 1
            return fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox/"):
            await self.app(scope, receive, send)
            return
        if self._settings.latency:
            await asyncio.sleep(self._settings.latency)
        fault = self._decide()
        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "drop":
            await self._drop(send)
        else:
            await self._error(send, int(fault))

    async def _error(self, send: Send, status: int) -> None:
        message = "Too many requests." if status == 429 else "Internal error (injected by the sandbox)."
        body = json.dumps(
            {
                "status": {"code": status, "is_success": False, "user_message": message, "developer_message": ""},
                "data": None,
            }
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 429 and self._settings.retry_after is not None:
            headers.append((b"retry-after", str(self._settings.retry_after).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _drop(send: Send) -> None:
        # uvicorn's `send` is a bound method of the request cycle, which holds the socket's transport.
        # Aborting it closes the connection without a response, as a crashed proxy or server would.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is None:
            raise ConnectionAbortedError("sandbox fault: dropped connection")
        transport.abort()
        # Let uvicorn's connection_lost run so it treats the cycle as disconnected and sends nothing.
        for _ in range(3):
            await asyncio.sleep(0)
