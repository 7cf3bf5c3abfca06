"""Pure request planning: what scopes a cached answer, what text is embedded, and entry ids.

A request is cached under a *scope*: the namespace, the system prompt(s), the model, the
output-changing parameters and the exact prior turns. Only the last turn's text is compared
semantically; everything else must match exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "IGNORED_PARAMS",
    "RequestPlan",
    "canonical_params",
    "content_text",
    "exact_text",
    "normalize_text",
    "plan_request",
    "sha256_hex",
    "split_pinned",
    "system_prompt_hash",
    "model_hash",
]

SCOPE_VERSION = 1

# Parameters that never change what the model answers: transport, auth, routing, bookkeeping.
IGNORED_PARAMS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "timeout",
        "request_timeout",
        "metadata",
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "headers",
        "extra_headers",
        "caching",
        "cache",
        "max_retries",
        "num_retries",
        "callbacks",
        "client",
        "logger_fn",
        "proxy_server_request",
        "deployment_id",
        "azure_ad_token",
        "azure_ad_token_provider",
        "mock_response",
        "mock_timeout",
        "acompletion",
        "model_info",
        "preset_cache_key",
        "messages",
        "model",
        "custom_llm_provider",
        "http_client",
        "default_headers",
        "openai_api_key",
        "openai_api_base",
        "openai_proxy",
        "openai_organization",
        "streaming",
        "verbose",
        "tags",
        "run_name",
        "run_id",
        "parallel_tool_calls_auto",
        "service_tier",
        "store",
        "prompt_cache_key",
        "safety_identifier",
    }
)
_IGNORED_PREFIXES = ("litellm_", "aws_", "vertex_", "azure_", "langfuse_", "x-", "_")

_SYSTEM_ROLES = frozenset({"system", "developer"})


def sha256_hex(text: str) -> str:
    """Hex sha256 of a string (lone surrogates kept, never raised on)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def normalize_text(text: str) -> str:
    """NFKC, trimmed, whitespace collapsed, lone surrogates made U+FFFD. Case is kept.

    For the embedded text (and the guards) only: it folds "2³" into "23" and collapses the
    indentation of code, so it never keys anything that must match exactly."""
    clean = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return " ".join(unicodedata.normalize("NFKC", clean).split())


#: Last-turn texts longer than this (characters; ~250 model tokens) are split: the tail (last
#: paragraph or sentences, at most ``QUESTION_CHARS``) is embedded, the rest must match exactly.
LONG_TEXT_CHARS = 1000
QUESTION_CHARS = 600
#: A shorter text is split the same way when a blank line ends a part this long (a document or
#: template before the question): that part must then match exactly.
TEMPLATE_CONTEXT_CHARS = 400
_MIN_QUESTION_CHARS = 20  # a shorter last paragraph ("Answer:") takes the one before it too
_PARAGRAPH_RE = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?:;])\s+|\n\s*")
_CODE_RE = re.compile(r"```.*?(?:```|$)|^[ \t]+\S[^\n]*", re.DOTALL | re.MULTILINE)


def _paragraph_start(text: str) -> int:
    """Where the last paragraph starts (with the one before if it is a mere "Answer:")."""
    starts = [0, *(m.end() for m in _PARAGRAPH_RE.finditer(text))]
    start = starts.pop()
    while starts and len(text) - start < _MIN_QUESTION_CHARS:
        start = starts.pop()
    return start


def _tail_start(text: str) -> int:
    """Where the embedded tail of a long text starts: the last paragraph(s), else sentences."""
    start = _paragraph_start(text)
    if len(text) - start <= QUESTION_CHARS:
        return start
    ends = [m.end() for m in _SENTENCE_END_RE.finditer(text, start) if m.end() < len(text)]
    fitting = [end for end in ends if len(text) - end <= QUESTION_CHARS]
    enough = [end for end in fitting if len(text) - end >= _MIN_QUESTION_CHARS]
    return enough[-1] if enough else fitting[0] if fitting else ends[-1] if ends else start


def split_pinned(text: str) -> tuple[str, str]:
    """(pinned, tail) of a last-turn text as sent.

    ``pinned`` must match exactly for any hit (it joins the scope): the context before the
    tail of a long text (or of a text whose last paragraph follows a long one), and code
    (fenced blocks, indented lines) whose whitespace is meaning. ``tail`` is what is embedded
    then ("" = embed the whole text)."""
    text = text.strip()
    tail = ""
    context = ""
    start = _tail_start(text) if len(text) > LONG_TEXT_CHARS else _paragraph_start(text)
    if len(text) > LONG_TEXT_CHARS or (
        start >= TEMPLATE_CONTEXT_CHARS and len(text) - start <= QUESTION_CHARS
    ):
        context, tail = text[:start], text[start:]
    code = "\x1f".join(m.group() for m in _CODE_RE.finditer(tail or text))
    pinned = f"{context}\x1e{code}" if context or code else ""
    return pinned, tail


def exact_text(text: str) -> str:
    """The text as sent, only trimmed: what exact keys, system hashes and prior turns use."""
    return text.strip()


def _storable(text: str) -> str:
    """``text`` with lone surrogates made U+FFFD (what a record's prompt field can hold)."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def content_text(content: Any) -> tuple[str, bool]:
    """Text of a message ``content`` and whether it was text only.

    Strings are returned as-is; a list of parts joins its text parts. Any non-text part
    (image, audio, file, unknown) makes the content *not text only*: such a turn cannot be
    compared by its words alone.
    """
    if content is None:
        return "", True
    if isinstance(content, str):
        return content, True
    if isinstance(content, Sequence) and not isinstance(content, bytes | bytearray):
        texts: list[str] = []
        text_only = True
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping) and part.get("type") == "text":
                value = part.get("text")
                if isinstance(value, str):
                    texts.append(value)
                else:
                    text_only = False
            else:
                text_only = False
        return "\n".join(texts), text_only
    return "", False


def _jsonable(value: Any) -> Any:
    """A canonical, JSON-safe rendering of arbitrary parameter values (repr as last resort)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):  # 0.0 == 0: LangChain sends floats where LiteLLM callers don't
        if not math.isfinite(value):
            return repr(value)
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(repr(_jsonable(v)) for v in value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _jsonable(dump())
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):  # a pydantic class given as response_format
        return {"__schema__": _jsonable(schema())}
    return f"<{type(value).__module__}.{type(value).__qualname__}>{value!r}"


def canonical_params(params: Mapping[str, Any] | None) -> str:
    """Output-changing parameters as canonical JSON (sorted; ignored keys and Nones dropped)."""
    kept = {
        str(key): _jsonable(value)
        for key, value in (params or {}).items()
        if value is not None
        and key not in IGNORED_PARAMS
        and not str(key).startswith(_IGNORED_PREFIXES)
    }
    return json.dumps(kept, sort_keys=True, ensure_ascii=True, separators=(",", ":"))


def system_prompt_hash(system_prompts: str | Sequence[str]) -> str:
    """The scope hash of one or more system prompts (as :func:`plan_request` computes it)."""
    prompts = [system_prompts] if isinstance(system_prompts, str) else list(system_prompts)
    return sha256_hex("\x1e".join(exact_text(p) for p in prompts))[:32]


def model_hash(model: str) -> str:
    """The scope tag of a model name."""
    return sha256_hex(model.strip())[:32]


@dataclass(frozen=True)
class RequestPlan:
    """Everything the cache needs to know about one request, computed without I/O."""

    namespace: str
    scope: str  # hex hash of namespace + system + model + params + prior turns
    system_hash: str
    model_hash: str
    entry_id: str  # hex hash of scope + the last-turn text as sent (trimmed): the exact key
    text: str  # normalized last-turn text (what is embedded)
    semantic: bool  # may the semantic tier be used (last turn is a text-only user turn)
    skip_reason: str | None = None  # set when the request must bypass the cache entirely
    prompt: str = ""  # the last-turn text as sent (trimmed): stored, and checked on KNN hits
    tail: str | None = None  # a long text's embedded tail (its context is in the scope)

    @property
    def embed_text(self) -> str:
        """What is embedded: the whole text, or a long text's tail."""
        return self.tail or self.text


def _turn_record(message: Mapping[str, Any]) -> dict[str, Any]:
    text, text_only = content_text(message.get("content"))
    record: dict[str, Any] = {"role": str(message.get("role", "")), "text": exact_text(text)}
    if not text_only:
        record["content"] = _jsonable(message.get("content"))
    for key in ("name", "tool_calls", "tool_call_id", "function_call"):
        if message.get(key) is not None:
            record[key] = _jsonable(message.get(key))
    return record


def plan_request(
    messages: Sequence[Mapping[str, Any]] | Any,
    *,
    model: str,
    params: Mapping[str, Any] | None = None,
    namespace: str,
) -> RequestPlan:
    """Plan a request: scope, exact key and the text to embed. Never raises on odd input."""
    skip: str | None = None
    if isinstance(messages, str | bytes) or not isinstance(messages, Sequence) or not messages:
        messages, skip = [], "no_messages"
    valid = [m for m in messages if isinstance(m, Mapping)]
    if len(valid) != len(messages):
        skip = skip or "bad_message"
    systems = [m for m in valid if m.get("role") in _SYSTEM_ROLES]
    turns = [m for m in valid if m.get("role") not in _SYSTEM_ROLES]
    system_hash = system_prompt_hash([content_text(m.get("content"))[0] for m in systems])
    last = turns[-1] if turns else {}
    text_raw, text_only = content_text(last.get("content"))
    text = normalize_text(text_raw)
    sent = exact_text(text_raw)
    if not turns:
        skip = skip or "no_turn"
    elif not text_only:
        skip = skip or "non_text_content"
    elif not text:
        skip = skip or "empty_text"
    prior = [_turn_record(m) for m in turns[:-1]]
    if not text_only:
        prior.append({"last_content": _jsonable(last.get("content"))})
    model_name = str(model).strip()
    scope_doc = {
        "v": SCOPE_VERSION,
        "ns": namespace,
        "sys": system_hash,
        "model": model_name,
        "params": canonical_params(params),
        "prior": prior,
        "last_role": str(last.get("role", "")),
        "last_extra": {k: v for k, v in _turn_record(last).items() if k not in ("role", "text")},
    }
    pinned, tail = split_pinned(text_raw)
    if pinned:  # long contexts and code must match exactly; short prose keeps its old scope
        scope_doc["pinned"] = sha256_hex(pinned)
    scope = sha256_hex(json.dumps(scope_doc, sort_keys=True, ensure_ascii=True))[:32]
    return RequestPlan(
        namespace=namespace,
        scope=scope,
        system_hash=system_hash,
        model_hash=model_hash(model_name),
        entry_id=sha256_hex(f"{scope}\x00{sent}")[:32],
        text=text,
        semantic=skip is None and last.get("role") == "user",
        skip_reason=skip,
        prompt=_storable(sent),
        tail=normalize_text(tail) or None,
    )
