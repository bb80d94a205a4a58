"""A scripted OpenAI-compatible endpoint for client tests (no model behind it).

``POST /v1/chat/completions`` and ``/v1/completions`` answer ``"echo: <last message or
prompt>"`` after ``delay`` seconds, with per-word log-probabilities when asked (chat's
``content`` list, or the legacy completions format). Faults queued in ``faults`` are
served first, one per request: ``"500"``, ``"503"``, ``"429:S"`` (``Retry-After: S``),
``"401"`` (the body repeats the request's ``Authorization`` header), ``"drop"`` (the
connection closes without a reply), ``"badjson"``, ``"text:T"`` (reply T).
The server records every request (``requests``: body, auth header, arrival time) and the
most requests it held at once (``max_in_flight``).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque

from local_http import JsonHandler, LocalServer


class ChatServer(LocalServer):
    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.faults: deque[str] = deque()
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(JsonHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                auth = self.headers.get("Authorization")
                with server.lock:
                    server.requests.append({"path": self.path, "body": body, "auth": auth,
                                            "t": time.monotonic()})
                    fault = server.faults.popleft() if server.faults else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay)
                    self._answer(fault, body, auth)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def _answer(self, fault, body, auth):
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault in ("500", "503") or (fault and fault.startswith("429")):
                    self.send_response(int(fault[:3]))
                    if fault.startswith("429:"):
                        self.send_header("Retry-After", fault[4:])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "401":
                    self._send(401, json.dumps({"error": f"bad key in {auth}"}).encode())
                    return
                if fault == "badjson":
                    self._send(200, b"<html>not json</html>")
                    return
                chat = self.path.endswith("/chat/completions")
                asked = body["messages"][-1]["content"] if chat else body["prompt"]
                text = fault[5:] if fault and fault.startswith("text:") else f"echo: {asked}"
                choice = {"index": 0, "finish_reason": "stop"}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                if body.get("logprobs"):
                    choice["logprobs"] = _logprobs(text.split(), chat,
                                                   body.get("top_logprobs") or body["logprobs"])
                self._send(200, json.dumps({"id": "x", "model": body.get("model"),
                                            "choices": [choice]}).encode())


        self._serve(Handler)


def _logprobs(tokens: list[str], chat: bool, top: int) -> dict:
    """Token i has log-probability -i/10; its alternatives are ``alt0``, ``alt1`` ..."""
    rows = [(t, -i / 10, {f"alt{k}": -1.0 - k for k in range(int(top))})
            for i, t in enumerate(tokens)]
    if chat:
        return {"content": [{"token": t, "logprob": p, "top_logprobs": [
            {"token": k, "logprob": v} for k, v in alts.items()]} for t, p, alts in rows]}
    return {"tokens": [t for t, _, _ in rows], "token_logprobs": [p for _, p, _ in rows],
            "top_logprobs": [alts for _, _, alts in rows]}
