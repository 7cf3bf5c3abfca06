"""``cached(model)``: chat-model calls, streaming included, that read and fill an LLM cache.

``BaseChatModel.stream``/``astream`` never consult the LLM cache (langchain-ai/langchain
issues 23701 and 13119). ``cached`` wraps a chat model, or ``model.bind_tools(...)``, in a
Runnable whose calls look the request up under the very key ``invoke`` would use
(``BaseChatModel._generate_with_cache``). A hit is streamed back as ``AIMessageChunk``s; on a
miss the model streams as usual and the assembled message is stored once the stream completes.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, NamedTuple

from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.load import dumps
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import add_ai_message_chunks
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.messages.utils import message_chunk_to_message
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig
from langchain_core.runnables.config import ensure_config

try:  # what BaseChatModel applies to messages before it builds the cache key
    from langchain_core.language_models._utils import _normalize_messages
except ImportError:  # pragma: no cover - older langchain-core

    def _normalize_messages(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
        return list(messages)


__all__ = ["CachedChatModel", "cached", "message_to_chunks"]

_WORD_START = re.compile(r"(?<=\s)(?=\S)")
# Call kwargs that ``BaseChatModel.generate`` pops before it computes the llm_string.
_TRACING_KWARGS = ("ls_structured_output_format", "structured_output_format")


class _Key(NamedTuple):
    cache: BaseCache
    prompt: str
    llm_string: str
    messages: list[BaseMessage]
    call: dict[str, Any]


def message_to_chunks(message: AIMessage) -> list[AIMessageChunk]:
    """Split a message into word chunks whose sum is the message again (tool calls, usage...)."""
    content = message.content
    pieces: list[Any] = _WORD_START.split(content) if isinstance(content, str) else [content]
    chunks = [AIMessageChunk(content=piece, id=message.id) for piece in pieces]
    calls: list[ToolCallChunk] = [
        tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i)
        for i, call in enumerate(message.tool_calls)
    ]
    calls += [
        tool_call_chunk(name=bad["name"], args=bad["args"], id=bad["id"], index=len(calls) + i)
        for i, bad in enumerate(message.invalid_tool_calls)
    ]
    chunks.append(
        AIMessageChunk(
            content="" if isinstance(content, str) else [],
            id=message.id,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            tool_call_chunks=calls,
            chunk_position="last",
        )
    )
    return chunks


def _cached_message(generations: Sequence[Generation] | None) -> AIMessage | None:
    if not generations:
        return None
    message = getattr(generations[0], "message", None)
    return message if isinstance(message, AIMessage) else AIMessage(generations[0].text)


def _assembled(chunks: list[Any]) -> list[Generation] | None:
    """The generation to cache for a completed stream (None when it cannot be assembled)."""
    if chunks and all(isinstance(chunk, AIMessageChunk) for chunk in chunks):
        return [
            ChatGeneration(
                message=message_chunk_to_message(add_ai_message_chunks(chunks[0], *chunks[1:]))
            )
        ]
    if len(chunks) == 1 and isinstance(chunks[0], AIMessage):  # model without streaming
        return [ChatGeneration(message=chunks[0])]
    return None


def _unwrap(model: Runnable[Any, Any]) -> tuple[BaseChatModel, dict[str, Any]]:
    """The chat model inside (nested) bindings, and the kwargs they add (outer ones win)."""
    kwargs: dict[str, Any] = {}
    while isinstance(model, RunnableBinding):
        kwargs = {**model.kwargs, **kwargs}
        model = model.bound
    if not isinstance(model, BaseChatModel):
        raise TypeError(f"cached() needs a chat model or model.bind(...), got {type(model)!r}")
    return model, kwargs


class CachedChatModel(Runnable[LanguageModelInput, AIMessage]):
    """A chat model whose ``invoke``/``ainvoke``/``stream``/``astream`` all use the cache.

    The cache is ``cache``, else the model's own ``cache=``, else the global LLM cache. Keys
    are exactly those of ``model.invoke``, so streamed and invoked calls share entries. A hit
    reports to the callbacks as ``invoke`` does on a hit (chat model start, then end with the
    cached message); a stream that raises or is abandoned early is not stored.
    """

    def __init__(
        self, model: Runnable[LanguageModelInput, Any], cache: BaseCache | None = None
    ) -> None:
        self.model = model
        self.cache = cache
        self._chat, self._bound_kwargs = _unwrap(model)

    def __repr__(self) -> str:
        return f"cached({self.model!r}, cache={self.cache!r})"

    def _model_cache(self) -> BaseCache | None:
        own = self._chat.cache
        if own is False:
            return None
        return own if isinstance(own, BaseCache) else get_llm_cache()

    def _key(
        self, input: LanguageModelInput, kwargs: dict[str, Any], *, invoking: bool = False
    ) -> _Key | None:
        """The cache and key for this call; None without a cache, or when invoking a model
        that already uses this cache itself."""
        own = self._model_cache()
        cache = self.cache or own
        if cache is None or (invoking and cache is own):
            return None
        call = {**self._bound_kwargs, **kwargs}
        stop = call.pop("stop", None)
        for name in _TRACING_KWARGS:
            call.pop(name, None)
        messages = _normalize_messages(self._chat._convert_input(input).to_messages())
        prompt = dumps(
            [m.model_copy(update={"id": None}) if m.id is not None else m for m in messages]
        )
        llm_string = self._chat._get_llm_string(stop=stop, **call)
        return _Key(cache, prompt, llm_string, messages, {**call, "stop": stop})

    def _hit_run(self, key: _Key, config: RunnableConfig | None) -> dict[str, Any]:
        """What a callback run of a cache hit reports (as ``invoke`` does on a hit: a chat
        model start, then the end with the cached message)."""
        config = ensure_config(config)
        return {
            "configure": (
                config.get("callbacks"),
                self._chat.callbacks,
                self._chat.verbose,
                config.get("tags"),
                self._chat.tags,
                config.get("metadata"),
                self._chat.metadata,
            ),
            "start": {
                "serialized": self._chat._serialized,
                "messages": [key.messages],
                "invocation_params": self._chat._get_invocation_params(**key.call),
                "name": config.get("run_name"),
                "run_id": config.get("run_id"),
                "batch_size": 1,
            },
        }

    def _report_hit(self, key: _Key, config: RunnableConfig | None, hit: AIMessage) -> None:
        run = self._hit_run(key, config)
        manager = CallbackManager.configure(*run["configure"])
        (run_manager,) = manager.on_chat_model_start(**run["start"])
        run_manager.on_llm_end(LLMResult(generations=[[ChatGeneration(message=hit)]]))

    async def _areport_hit(self, key: _Key, config: RunnableConfig | None, hit: AIMessage) -> None:
        run = self._hit_run(key, config)
        manager = AsyncCallbackManager.configure(*run["configure"])
        (run_manager,) = await manager.on_chat_model_start(**run["start"])
        await run_manager.on_llm_end(LLMResult(generations=[[ChatGeneration(message=hit)]]))

    def invoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        key = self._key(input, kwargs, invoking=True)
        if key is None:
            return self.model.invoke(input, config, **kwargs)  # type: ignore[no-any-return]
        hit = _cached_message(key.cache.lookup(key.prompt, key.llm_string))
        if hit is not None:
            self._report_hit(key, config, hit)
            return hit
        message = self.model.invoke(input, config, **kwargs)
        key.cache.update(key.prompt, key.llm_string, [ChatGeneration(message=message)])
        return message  # type: ignore[no-any-return]

    async def ainvoke(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AIMessage:
        key = self._key(input, kwargs, invoking=True)
        if key is None:
            return await self.model.ainvoke(input, config, **kwargs)  # type: ignore[no-any-return]
        hit = _cached_message(await key.cache.alookup(key.prompt, key.llm_string))
        if hit is not None:
            await self._areport_hit(key, config, hit)
            return hit
        message = await self.model.ainvoke(input, config, **kwargs)
        await key.cache.aupdate(key.prompt, key.llm_string, [ChatGeneration(message=message)])
        return message  # type: ignore[no-any-return]

    def stream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[AIMessageChunk]:
        key = self._key(input, kwargs)
        hit = None if key is None else _cached_message(key.cache.lookup(key.prompt, key.llm_string))
        if hit is not None and key is not None:
            self._report_hit(key, config, hit)
            yield from message_to_chunks(hit)
            return
        chunks = []
        for chunk in self.model.stream(input, config, **kwargs):
            chunks.append(chunk)
            yield chunk
        if key is not None and (generations := _assembled(chunks)) is not None:
            key.cache.update(key.prompt, key.llm_string, generations)

    async def astream(
        self, input: LanguageModelInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[AIMessageChunk]:
        key = self._key(input, kwargs)
        hit = (
            None
            if key is None
            else _cached_message(await key.cache.alookup(key.prompt, key.llm_string))
        )
        if hit is not None and key is not None:
            await self._areport_hit(key, config, hit)
            for piece in message_to_chunks(hit):
                yield piece
            return
        chunks = []
        async for chunk in self.model.astream(input, config, **kwargs):
            chunks.append(chunk)
            yield chunk
        if key is not None and (generations := _assembled(chunks)) is not None:
            await key.cache.aupdate(key.prompt, key.llm_string, generations)


def cached(
    model: Runnable[LanguageModelInput, Any], cache: BaseCache | None = None
) -> CachedChatModel:
    """Wrap a chat model so streaming calls also read and fill ``cache``.

    ``cache`` defaults to the model's ``cache=``, else the global ``set_llm_cache`` cache.
    """
    return CachedChatModel(model, cache)
