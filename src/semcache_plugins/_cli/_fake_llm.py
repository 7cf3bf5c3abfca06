"""A local OpenAI-compatible fake LLM for the demo, the notebooks and the tests (stdlib
``http.server``; ``semcache fake-llm`` serves it on a port).

```python
with FakeLLM(delay=0.4) as llm:
    litellm.completion(model="openai/gpt-4o-mini", api_base=llm.api_base, api_key="sk-demo", ...)
```

``/v1/chat/completions`` answers JSON, or SSE when ``stream`` is true, after ``delay`` seconds
(streams spread it over the chunks). Answers are deterministic: the same system prompt, model
and question always get the same text, and changing any of them changes it. ``usage`` counts
tokens like a BPE tokenizer would (about four characters a token); requests are counted.
A request with ``tools`` gets a call to its first tool; ``/v1/embeddings`` returns small
deterministic vectors. Tests use ``FakeLLM(delay=0, answer=echo_answer)``: an answer that names
the model, temperature, system prompt and question, so one served from the wrong scope shows;
``answers`` scripts the answer to a question.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

__all__ = [
    "CHAT_PATH",
    "EMBEDDINGS_PATH",
    "AnswerFunction",
    "FakeLLM",
    "echo_answer",
    "fake_answer",
    "token_count",
]

CHAT_PATH = "/v1/chat/completions"
EMBEDDINGS_PATH = "/v1/embeddings"
#: ``(messages, model, temperature) -> answer text``
AnswerFunction = Callable[[list[dict[str, Any]], str, Any], str]
_OPENINGS = ("Sure.", "Happy to help.", "Good question.", "Here is what to do.")
_BODIES = (
    "Open the relevant page in your account settings and follow the steps shown there.",
    "Our records show this was handled; you will get an email confirmation shortly.",
    "You can do this yourself in a few clicks, or ask support to do it for you.",
    "This usually takes one to two business days; no action is needed on your side.",
    "Check the help center article on this topic for screenshots of every step.",
)
_CLOSINGS = ("Anything else?", "Let me know if that helps.", "Have a great day!")


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def token_count(text: str) -> int:
    """Approximate BPE token count: about four characters a token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def fake_answer(messages: list[dict[str, Any]], model: str, temperature: Any = None) -> str:
    """The deterministic answer to ``messages`` (depends on system prompt, model, question):
    a plausible support reply, for the demo and the notebooks."""
    system = " / ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    question = _text(messages[-1].get("content")) if messages else ""
    digest = hashlib.sha256(f"{system}\x00{model}\x00{question}".encode()).digest()
    return (
        f'{_OPENINGS[digest[0] % len(_OPENINGS)]} About "{question.strip()}": '
        f"{_BODIES[digest[1] % len(_BODIES)]} {_CLOSINGS[digest[2] % len(_CLOSINGS)]}"
    )


def echo_answer(messages: list[dict[str, Any]], model: str, temperature: Any = None) -> str:
    """An answer naming the model, temperature, system prompt and question (or the tool
    result it answers), so a response served from the wrong scope is visible (tests)."""
    system = " / ".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return f"[{model} t={temperature}] The tool said: {_text(last.get('content'))}"
    return f"[{model} t={temperature} sys={system!r}] You asked: {_text(last.get('content'))}"


def _tool_call(body: dict[str, Any]) -> dict[str, Any]:
    """A call to the request's first tool, its arguments the question."""
    question = _text(body["messages"][-1].get("content"))
    name = body["tools"][0]["function"]["name"]
    return {
        "id": "call_" + hashlib.sha256(question.encode()).hexdigest()[:12],
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"query": question})},
    }


def _embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    data = [
        {
            "object": "embedding",
            "index": index,
            "embedding": [b / 255.0 for b in hashlib.sha256(str(item).encode()).digest()[:8]],
        }
        for index, item in enumerate(inputs)
    ]
    usage = {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}
    return {"object": "list", "data": data, "model": body.get("model", ""), "usage": usage}


def _usage(messages: list[dict[str, Any]], content: str) -> dict[str, int]:
    # OpenAI bills ~4 tokens of framing per message plus 3 to prime the reply.
    prompt = 3 + sum(4 + token_count(_text(m.get("content"))) for m in messages)
    completion = token_count(content)
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
        owner = self.server.owner
        if path == EMBEDDINGS_PATH:
            owner._record(path, body)
            self._send(200, json.dumps(_embeddings(body)).encode())
            return
        if path != CHAT_PATH:
            self._send(404, b'{"error": {"message": "not found", "type": "invalid_request"}}')
            return
        number = owner._record(path, body)
        messages = body.get("messages") or []
        model = str(body.get("model", ""))
        last_role = messages[-1].get("role") if messages else None
        tool_calls = [_tool_call(body)] if body.get("tools") and last_role != "tool" else None
        question = _text(messages[-1].get("content")) if messages else ""
        content = (
            None
            if tool_calls
            else owner.answers.get(question)
            or owner.answer(messages, model, body.get("temperature"))
        )
        head = {
            "id": f"chatcmpl-fake-{number}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        usage = _usage(messages, content or json.dumps(tool_calls))
        if body.get("stream"):
            last = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(head, content, tool_calls, usage, last)
            return
        time.sleep(owner.delay)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = "tool_calls" if tool_calls else "stop"
        choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
        response = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        self._send(200, json.dumps(response).encode())

    def _send(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _stream(
        self,
        head: dict[str, Any],
        content: str | None,
        tool_calls: list[dict[str, Any]] | None,
        usage: dict[str, int],
        last: bool,
    ) -> None:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if tool_calls:
            deltas.append({"tool_calls": [{"index": 0, **tool_calls[0]}]})
        else:
            words = (content or "").split(" ")
            deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": d, "finish_reason": None}]} for d in deltas
        ]
        finish = "tool_calls" if tool_calls else "stop"
        chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if last:
            chunks.append({"choices": [], "usage": usage})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = self.server.owner.delay
        time.sleep(delay / 2)  # time to first token; the rest is spread over the chunks
        for chunk in chunks:
            frame = {**head, "object": "chat.completion.chunk", **chunk}
            self._frame(f"data: {json.dumps(frame)}\n\n".encode())
            time.sleep(delay / 2 / len(chunks))
        self._frame(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _frame(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: FakeLLM, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.owner = owner

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client closing its keep-alive connection is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeLLM:
    """An OpenAI-compatible chat server on a free 127.0.0.1 port; a context manager.

    ``delay`` is the seconds each completion takes (default 0.4, a fast hosted model);
    ``answer`` writes the answers (default :func:`fake_answer`; tests: :func:`echo_answer`).
    """

    def __init__(
        self, delay: float = 0.4, *, port: int = 0, answer: AnswerFunction = fake_answer
    ) -> None:
        self.delay = delay
        self.port = port  # 0: a free port
        self.answer = answer
        #: scripted answers by the last message's text (else ``answer``)
        self.answers: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []  # chat completion bodies, in order
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.api_base if self._server is not None else "stopped"
        return f"FakeLLM({where}, delay={self.delay}, requests={self.count})"

    @property
    def api_base(self) -> str:
        """The base URL to give LiteLLM (``api_base``) or OpenAI clients (``base_url``)."""
        if self._server is None:
            raise RuntimeError("FakeLLM is not running: use start() or a with block")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def count(self) -> int:
        """How many chat completions the server received."""
        with self._lock:
            return len(self.requests)

    def calls(self, path: str = CHAT_PATH) -> int:
        """How many requests reached ``path`` (``EMBEDDINGS_PATH``, ...)."""
        with self._lock:
            return self._counts[path]

    def _record(self, path: str, body: dict[str, Any]) -> int:
        with self._lock:
            self._counts[path] += 1
            if path == CHAT_PATH:
                self.requests.append(body)
            return self._counts[path]

    def start(self) -> FakeLLM:
        """Listen on a free port and serve in a daemon thread."""
        if self._server is None:
            self._server = _Server(self, self.port)
            self._thread = threading.Thread(
                target=self._server.serve_forever, daemon=True, name="semcache-fake-llm"
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
