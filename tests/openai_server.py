"""A loopback OpenAI-compatible chat-completions server for captioner tests (aiohttp, own thread).

Every request is checked: the model name, a system + user message pair, the image as a
``data:image/jpeg;base64,`` URL that decodes to a JPEG, and a level word in the prompt ("... is rated
<level> ..."). A request that fails a check gets HTTP 400 and is recorded in ``violations``.

What the server does with a valid request is chosen by the decoded image's width (so a test picks
each image's fate by the size it gives it), counting attempts per distinct image:
    ``WIDTH_OK`` answers; ``WIDTH_500_ONCE``: a plain-text HTTP 500 on the first attempt, then answers;
    ``WIDTH_500_ALWAYS``: always a plain-text HTTP 500; ``WIDTH_500_JSON``: always a JSON HTTP 500;
    ``WIDTH_TIMEOUT_ONCE``: sleeps past the client's timeout on the first attempt, then answers;
    ``WIDTH_TIMEOUT_ALWAYS``: always sleeps past the timeout.
The answer is "The quality of this image is <level>: test caption <w>x<h>." (aesthetics prompts:
"The aesthetics ..."). With ``delay_s`` the server is a slow model: it answers one request at a time,
each after ``delay_s`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import re
import threading
from collections import Counter

from aiohttp import web
from PIL import Image

WIDTH_OK, WIDTH_500_ONCE, WIDTH_500_ALWAYS, WIDTH_500_JSON, WIDTH_TIMEOUT_ONCE, WIDTH_TIMEOUT_ALWAYS = range(40, 46)
FAILING_WIDTHS = (WIDTH_500_ALWAYS, WIDTH_500_JSON, WIDTH_TIMEOUT_ALWAYS)
LEVEL_IN_PROMPT = re.compile(r"\brated (bad|poor|fair|good|perfect)\b")
DATA_URL = "data:image/jpeg;base64,"


class OpenAIServer:
    def __init__(self, model: str = "test-vlm", api_key: str | None = None, sleep_s: float = 3.0,
                 delay_s: float = 0.0):
        self.model, self.api_key, self.sleep_s, self.delay_s = model, api_key, sleep_s, delay_s
        self._one_at_a_time: asyncio.Lock | None = None  # made in the server's loop
        self.attempts: Counter[str] = Counter()  # image digest -> requests seen
        self.answered: list[tuple[str, str, int]] = []  # (level, task, width) of every 200 answer
        self.violations: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"

    def __enter__(self) -> OpenAIServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("loopback OpenAI server did not start")
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=32 * 2**20)
        app.router.add_post("/v1/chat/completions", self.handle)
        runner = web.AppRunner(app)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def _reject(self, why: str) -> web.Response:
        self.violations.append(why)
        return web.json_response({"error": {"message": why}}, status=400)

    def check(self, body: dict, headers) -> tuple[str | None, tuple | None]:
        """(violation, (level, task, image bytes)) of one request."""
        if self.api_key and headers.get("Authorization") != f"Bearer {self.api_key}":
            return f"bad Authorization header {headers.get('Authorization')!r}", None
        if body.get("model") != self.model:
            return f"model {body.get('model')!r} != {self.model!r}", None
        messages = body.get("messages") or []
        if [m.get("role") for m in messages] != ["system", "user"] or not isinstance(messages[1]["content"], list):
            return f"expected system + user(parts) messages, got {[m.get('role') for m in messages]}", None
        parts = {p.get("type"): p for p in messages[1]["content"]}
        url = (parts.get("image_url") or {}).get("image_url", {}).get("url", "")
        text = (parts.get("text") or {}).get("text", "")
        level = LEVEL_IN_PROMPT.search(text)
        if not url.startswith(DATA_URL):
            return f"image is not a JPEG data URL: {url[:40]!r}", None
        if not level:
            return f"no level word in prompt {text[:80]!r}", None
        task = "aesthetics" if "aesthetic" in text else "quality"
        return None, (level.group(1), task, base64.b64decode(url[len(DATA_URL):]))

    async def handle(self, request: web.Request) -> web.Response:
        violation, parsed = self.check(await request.json(), request.headers)
        if violation:
            return self._reject(violation)
        level, task, jpeg = parsed
        try:
            image = Image.open(io.BytesIO(jpeg))
            if image.format != "JPEG":
                return self._reject(f"image format {image.format}, expected JPEG")
            width, height = image.size
        except Exception as e:  # noqa: BLE001 - any decode failure is a protocol violation
            return self._reject(f"image does not decode: {e}")
        key = hashlib.sha1(jpeg).hexdigest()
        self.attempts[key] += 1  # counted on arrival
        first = self.attempts[key] == 1
        if self.delay_s:
            self._one_at_a_time = self._one_at_a_time or asyncio.Lock()
            async with self._one_at_a_time:
                await asyncio.sleep(self.delay_s)
        if width == WIDTH_500_ALWAYS or (width == WIDTH_500_ONCE and first):
            return web.Response(status=500, text="Internal Server Error")
        if width == WIDTH_500_JSON:
            return web.json_response({"error": {"message": "engine crashed"}}, status=500)
        if width == WIDTH_TIMEOUT_ALWAYS or (width == WIDTH_TIMEOUT_ONCE and first):
            await asyncio.sleep(self.sleep_s)
        self.answered.append((level, task, width))
        noun = "aesthetics of this image are" if task == "aesthetics" else "quality of this image is"
        caption = f"The {noun} {level}: test caption {width}x{height}."
        return web.json_response({
            "id": "chatcmpl-test", "object": "chat.completion", "model": self.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": caption}}],
        })
