"""An aiohttp session for ``ray.data.llm``'s HTTP processor that never raises and never loses a row.

ray.data.llm's ``HttpRequestUDF`` (Ray 2.60) has no per-row error handling: an error response whose
body is not JSON (e.g. a plain-text HTTP 500) or a row whose retries (timeouts, 408/429/502-504) are
spent raises and ends the whole job, and an HTTP 500 with a JSON body is passed on unretried. It calls
``session.post(...)`` for every row of a batch first and awaits the responses afterwards. This session
(passed as ``session_factory``) therefore:

- starts each request as a task as soon as ``post`` is called, so a batch's requests run concurrently
  (at most ``max_in_flight`` at once) and the processor's ``qps`` spacing of ``post`` calls becomes a
  real rate limit;
- retries timeouts, connection errors, 408, 429 and 5xx itself, with exponential backoff, each
  attempt bounded by ``timeout_s``;
- always answers HTTP 200: the server's JSON, or ``{"uniqa_error": "..."}`` naming what failed (status,
  a truncated body, the last exception), which the captioner turns into an ``error`` row.
The processor's own ``max_retries`` must be 0 (it never sees a retryable status anyway).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
BODY_CHARS = 200
GAVE_UP = "failed after "  # how the error of a request whose retries were all spent starts


def gave_up(error: str | None) -> bool:
    """Whether an error row is a request whose retries were spent (server down, overloaded, timing out): worth
    asking again in a later run, unlike a broken image or a request the server refused."""
    return bool(error) and error.startswith(GAVE_UP)


def models_url(url: str) -> str:
    """The ``/models`` listing beside a chat-completions URL (``.../v1/chat/completions`` -> ``.../v1/models``)."""
    base = url.split("?", 1)[0].rstrip("/")
    base = base[: -len("/chat/completions")] if base.endswith("/chat/completions") else base.rsplit("/", 1)[0]
    return base + "/models"


def wait_for_model(url: str, model: str, wait_s: float, headers: dict[str, str] | None = None,
                   poll_s: float = 1.0, clock=None, sleep=None) -> float:
    """Driver side, before any Ray work: poll ``GET <models_url(url)>`` until the server answers, for at most
    ``wait_s`` seconds (a server still loading its model refuses connections or answers 503). Returns the seconds
    waited; raises :class:`~uniqa.errors.UniqaError` when it never answered, or when it does not serve ``model``
    (naming the models it serves)."""
    import time
    import urllib.error
    import urllib.request

    from uniqa.errors import UniqaError

    clock, sleep = clock or time.monotonic, sleep or time.sleep
    listing, start, last = models_url(url), clock(), "no answer"
    while True:
        try:
            request = urllib.request.Request(listing, headers=headers or {})
            with urllib.request.urlopen(request, timeout=max(1.0, min(10.0, wait_s))) as response:
                body = json.loads(response.read().decode("utf-8", "replace"))
            served = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
            if model not in served:
                raise UniqaError(f"the server at {listing} does not serve openai.model={model!r}; it serves "
                                 f"{served}")
            return clock() - start
        except (urllib.error.URLError, OSError, ValueError, AttributeError) as e:
            last = f"{type(e).__name__}: {str(e)[:BODY_CHARS]}"
        left = wait_s - (clock() - start)
        if left <= 0:
            raise UniqaError(f"the server at {listing} did not answer within openai.wait_s={wait_s:g} s ({last}); "
                             "start it first, or raise openai.wait_s")
        sleep(min(poll_s, left))


@dataclass(frozen=True)
class SessionFactory:
    """Picklable ``session_factory`` for ``HttpRequestProcessorConfig`` (shipped to each worker)."""

    timeout_s: float = 60.0
    max_retries: int = 3
    retry_wait_s: float = 1.0
    max_in_flight: int = 16

    def __call__(self) -> ResilientSession:
        return ResilientSession(self)


class Answer:
    """What ``await session.post(...)`` gives: an async context manager with ``status`` and ``json()``."""

    def __init__(self, payload: dict[str, Any]):
        self.status, self.reason, self._payload = 200, "OK", payload

    async def json(self) -> dict[str, Any]:
        return self._payload

    async def __aenter__(self) -> Answer:
        return self

    async def __aexit__(self, *exc) -> None:
        return None


class ResilientSession:
    def __init__(self, factory: SessionFactory):
        self.factory = factory
        self._session = None
        self._tasks: list[asyncio.Task] = []
        self._slots: asyncio.Semaphore | None = None

    async def __aenter__(self) -> ResilientSession:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.factory.timeout_s))
        self._slots = asyncio.Semaphore(self.factory.max_in_flight)
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._tasks:
            task.cancel()
        await self._session.close()

    def post(self, url: str, headers: dict | None = None, data: Any = None, **kwargs) -> asyncio.Task:
        """Start the request now; the returned task resolves to an :class:`Answer` (never raises)."""
        task = asyncio.ensure_future(self._answer(url, headers, data, kwargs))
        self._tasks.append(task)
        return task

    async def _answer(self, url: str, headers: dict | None, data: Any, kwargs: dict) -> Answer:
        async with self._slots:
            last = "no attempt made"
            for attempt in range(self.factory.max_retries + 1):
                if attempt:
                    await asyncio.sleep(self.factory.retry_wait_s * 2 ** (attempt - 1))
                done, last = await self._attempt(url, headers, data, kwargs)
                if done is not None:
                    return done
            return Answer({"uniqa_error": f"{GAVE_UP}{self.factory.max_retries + 1} attempts: {last}"})

    async def _attempt(self, url: str, headers: dict | None, data: Any, kwargs: dict) -> tuple[Answer | None, str]:
        """One request: (final answer, "") or (None, why it should be retried)."""
        import aiohttp

        try:
            async with self._session.post(url, headers=headers, data=data, **kwargs) as response:
                body = await response.text()
                if response.status in RETRY_STATUSES:
                    return None, f"HTTP {response.status}: {body[:BODY_CHARS]}"
                if response.status >= 400:
                    return Answer({"uniqa_error": f"HTTP {response.status}: {body[:BODY_CHARS]}"}), ""
                try:
                    parsed = json.loads(body)
                except json.JSONDecodeError:
                    parsed = None
                if not isinstance(parsed, dict) or not parsed:
                    return Answer({"uniqa_error": f"response is not a JSON object: {body[:BODY_CHARS]}"}), ""
                return Answer(parsed), ""
        except asyncio.TimeoutError:
            return None, f"timed out after {self.factory.timeout_s:g} s"
        except aiohttp.ClientError as e:
            return None, f"{type(e).__name__}: {str(e)[:BODY_CHARS]}"
