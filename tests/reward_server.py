"""A real OpenAI-compatible chat endpoint for tests: SmolLM2 answering over HTTP on localhost.

``POST /v1/chat/completions`` renders the messages with the model's chat template and
generates greedily (``max_tokens``). Faults can be queued to test clients: ``"429"``
(with ``Retry-After: 0``), ``"500"``, ``"503"``, ``"sleep:S"`` (answer after S seconds),
``"text:T"`` (reply T instead of generating), ``"badjson"`` (a 200 whose body is not JSON).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque

import torch
from local_http import JsonHandler, LocalServer


class RewardServer(LocalServer):
    def __init__(self, lm):
        self.lm = lm
        self.faults: deque[str] = deque()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(JsonHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                fault = server.faults.popleft() if server.faults else None
                if fault in ("429", "500", "503"):
                    self.send_response(int(fault))
                    if fault == "429":
                        self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                if fault and fault.startswith("sleep:"):
                    time.sleep(float(fault.split(":", 1)[1]))
                if fault == "badjson":
                    self._send(200, b"<html>not json</html>")
                    return
                text = fault.split(":", 1)[1] if fault and fault.startswith("text:") else \
                    server.generate(body)
                reply = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}]}
                self._send(200, json.dumps(reply).encode())


        self._serve(Handler)

    def generate(self, body: dict) -> str:
        tok, model = self.lm.tokenizer, self.lm.model
        ids = tok.apply_chat_template(body["messages"], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)["input_ids"]
        with self.lock, torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 do_sample=False, max_new_tokens=int(body.get("max_tokens", 16)),
                                 pad_token_id=tok.pad_token_id)
        return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
