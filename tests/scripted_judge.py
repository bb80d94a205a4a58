"""A scripted OpenAI-compatible judge for recipe tests: each reply is chosen by the test.

``ScriptedJudge(reply)`` serves ``POST /v1/chat/completions`` and ``/v1/completions`` and
``GET /v1/models``. ``reply(prompt)`` gets the request's text (the last chat message, or the
completion prompt) and returns ``(text, top)``: the reply text and, for requests that ask for
log-probabilities, the first token's alternatives as ``{token: logprob}`` (None: none sent).
Completions answer in OpenAI's legacy format, chat in the ``content`` list format.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from local_http import JsonHandler, LocalServer

Reply = Callable[[str], tuple[str, "dict[str, float] | None"]]


class ScriptedJudge(LocalServer):
    def __init__(self, reply: Reply):
        self.reply = reply
        self.asked: list[str] = []
        judge = self

        class Handler(JsonHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                self._send(200, json.dumps({"data": [{"id": "scripted"}]}).encode())

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                chat = self.path.endswith("/chat/completions")
                asked = body["messages"][-1]["content"] if chat else body["prompt"]
                judge.asked.append(asked)
                text, top = judge.reply(asked)
                choice = {"index": 0, "finish_reason": "stop"}
                if chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                if body.get("logprobs") and top is not None:
                    first = max(top, key=top.get)
                    if chat:
                        choice["logprobs"] = {"content": [{
                            "token": first, "logprob": top[first],
                            "top_logprobs": [{"token": k, "logprob": v}
                                             for k, v in top.items()]}]}
                    else:
                        choice["logprobs"] = {"tokens": [first],
                                              "token_logprobs": [top[first]],
                                              "top_logprobs": [top]}
                reply = {"id": "x", "model": body.get("model"), "choices": [choice]}
                self._send(200, json.dumps(reply).encode())


        self._serve(Handler)
