"""A local OpenAI-compatible server for end-to-end tests (stdlib ``http.server`` + a thread).

It counts requests and answers deterministically: the answer names the model, the
temperature, the system prompt and the question, so a response served from the wrong cache
scope is visible. ``/v1/chat/completions`` answers JSON, or SSE when ``stream`` is true; a
request with ``tools`` gets a call to its first tool; ``/v1/embeddings`` returns small vectors.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeOpenAI", "answer_for"]

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def answer_for(messages: list[dict[str, Any]], model: str, temperature: Any = None) -> str:
    """The deterministic answer the server gives to these messages."""
    system = " / ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"[{model} t={temperature}] The tool said: {_text(last.get('content'))}"
    return f"[{model} t={temperature} sys={system!r}] You asked: {_text(last.get('content'))}"


def _tool_call(body: dict[str, Any]) -> dict[str, Any]:
    question = _text(body["messages"][-1].get("content"))
    name = body["tools"][0]["function"]["name"]
    return {
        "id": "call_" + hashlib.sha256(question.encode()).hexdigest()[:12],
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"query": question})},
    }


def _usage(body: dict[str, Any], content: str) -> dict[str, int]:
    prompt = sum(len(_text(m.get("content")).split()) for m in body.get("messages", []))
    completion = max(1, len(content.split()))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the per-request access log."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?", 1)[0]
        self.server.owner.record(path, body)
        if path == CHAT_PATH:
            self._chat(body)
        elif path == EMBEDDINGS_PATH:
            self._embeddings(body)
        else:
            self._send(404, "application/json", b'{"error": {"message": "not found"}}')

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _chat(self, body: dict[str, Any]) -> None:
        model = body.get("model", "")
        number = self.server.owner.count(CHAT_PATH)
        created = int(time.time())
        ident = f"chatcmpl-fake-{number}"
        last_role = (body.get("messages") or [{}])[-1].get("role")
        tool_calls = [_tool_call(body)] if body.get("tools") and last_role != "tool" else None
        question = _text((body.get("messages") or [{}])[-1].get("content"))
        content = (
            None
            if tool_calls
            else self.server.owner.answers.get(question)
            or answer_for(body.get("messages", []), model, body.get("temperature"))
        )
        usage = _usage(body, content or json.dumps(tool_calls))
        finish = "tool_calls" if tool_calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if tool_calls:
                message["tool_calls"] = tool_calls
            response = {
                "id": ident,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "usage": usage,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            }
            self._send(200, "application/json", json.dumps(response).encode())
            return
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if tool_calls:
            deltas.append({"tool_calls": [{"index": 0, **tool_calls[0]}]})
        else:
            words = (content or "").split(" ")
            deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        chunks = [{"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas]
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({"choices": [], "usage": usage})
        frames = [
            "data: "
            + json.dumps(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    **chunk,
                }
            )
            + "\n\n"
            for chunk in chunks
        ]
        self._send(200, "text/event-stream", ("".join(frames) + "data: [DONE]\n\n").encode())

    def _embeddings(self, body: dict[str, Any]) -> None:
        inputs = body.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        data = []
        for index, item in enumerate(inputs):
            digest = hashlib.sha256(str(item).encode()).digest()
            data.append(
                {
                    "object": "embedding",
                    "index": index,
                    "embedding": [b / 255.0 for b in digest[:8]],
                }
            )
        response = {
            "object": "list",
            "data": data,
            "model": body.get("model", ""),
            "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)},
        }
        self._send(200, "application/json", json.dumps(response).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: FakeOpenAI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class FakeOpenAI:
    """Start with :meth:`start` (a free port on 127.0.0.1), stop with :meth:`stop`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server: _Server | None = None
        #: scripted answers by the last message's text (else ``answer_for``)
        self.answers: dict[str, str] = {}
        self._thread: threading.Thread | None = None

    @property
    def api_base(self) -> str:
        """The ``api_base`` to give LiteLLM (``http://127.0.0.1:<port>/v1``)."""
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def record(self, path: str, body: dict[str, Any]) -> None:
        with self._lock:
            self._counts[path] += 1
            self.requests.append((path, body))

    def count(self, path: str = CHAT_PATH) -> int:
        """How many requests reached ``path`` (chat completions by default)."""
        with self._lock:
            return self._counts[path]

    def start(self) -> FakeOpenAI:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="fake-openai"
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None
