"""An in-process L1 for exact-tier reads, kept coherent by Redis itself.

A listener connection (RESP3) turns on ``CLIENT TRACKING ON BCAST PREFIX <index_prefix>``:
Redis pushes the name of every key under the prefix that anyone changes, deletes or expires
(and a flush), and the listener thread drops those keys from the L1. Values are stored per
Redis key (the entry hash, each generation counter), each with the local deadline of its TTL
(``PTTL``, read after the value), so a key Redis would no longer return is never served even
before Redis gets round to expiring it.

Never stale beyond the push's travel time:
- a value is only stored while the listener is live, in the listener session in which its read
  started, and only if no invalidation of its keys was processed since the read started (the
  recent invalidations are kept in a bounded log; a read older than the log is not stored);
- values are served only while the listener heard from Redis in the last ``_LEASE`` seconds
  (it PINGs every ``_PING_EVERY``; a PONG means every earlier push has arrived), so a hung
  Redis or a partition stops the L1 within about that; losing the connection (or a PING not answered
  within ``socket_timeout``) empties the L1 and turns it off until tracking is on again;
- this process's own writes evict their keys at once (read-your-writes without the push);
- each read first handles the pushes already received (Redis sends a push before its reply to
  the writer, so another client's finished change is usually seen by the next read).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["LISTENER_NAME", "L1Cache", "Snapshot", "acquire_l1", "release_l1"]

logger = logging.getLogger("semcache_plugins")

Snapshot = tuple[int, int]  # (listener session, invalidations processed) when a read started

_MAX_KEYS = 4096
_MAX_BYTES = 32 * 1024 * 1024
_LOG = 4096  # recent invalidations kept to check reads in flight against
_PING_EVERY = 0.05  # seconds without a push before the listener checks its connection
# Values are served only while Redis was heard from (a push, or a PONG: every push sent before
# it has arrived) this recently, so a hung Redis or a partition stops the L1 within about that.
_LEASE = 0.25
_CATCH_UP_WAIT = 0.005  # seconds a read waits for the listener to finish reading its socket
_RETRY = 0.5  # seconds between listener reconnects
# of a held (value, expiry, size)
_value: Callable[[Any], Any] = itemgetter(0)
_expiry: Callable[[Any], float] = itemgetter(1)
LISTENER_NAME = "semcache-l1"  # CLIENT LIST shows the listener connections by this name


def _drain(connection: Any) -> None:
    """Handle every push already received on the listener's connection (read lock held)."""
    while connection.can_read(timeout=0):
        connection.read_response(push_request=True)


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _size(value: Any) -> int:
    if isinstance(value, bytes | str):
        return len(value) + 64
    if isinstance(value, list | tuple):
        return sum(_size(item) for item in value) + 64
    return 64


class L1Cache:
    """Redis key -> (value, local expiry) with tracking-driven invalidation; thread-safe."""

    def __init__(self, url: str, prefix: str, *, socket_timeout: float) -> None:
        self._url = url
        self._prefix = prefix
        self._timeout = socket_timeout
        self._lock = threading.Lock()
        self._values: OrderedDict[str, tuple[Any, float, int]] = OrderedDict()
        self._derived: dict[str, Any] = {}  # what readers derived from a held key (dropped with it)
        self._bytes = 0
        self._session = 0
        self._epoch = 0
        self._log: deque[tuple[int, frozenset[str] | None]] = deque(maxlen=_LOG)
        self._live = False
        self._heard = 0.0  # monotonic: when the listener last knew it had every push
        self._closed = False
        self._client: redis.Redis | None = None
        self._connection: Any = None  # the listener's, once tracking is on
        self._read_lock = threading.Lock()  # one thread at a time reads the listener's socket
        self._thread: threading.Thread | None = None

    # -- reads ---------------------------------------------------------------------------

    def get(self, keys: Sequence[str]) -> list[Any] | None:
        """The values of every key in ``keys``, or None unless all are held and unexpired."""
        if not self._catch_up():
            return None
        now = time.monotonic()
        with self._lock:
            if not self._live or now - self._heard > _LEASE:
                return None
            held = list(map(self._values.get, keys))
            if None in held or (held and min(map(_expiry, held)) <= now):
                return None
            for key in keys:
                self._values.move_to_end(key)
        return list(map(_value, held))

    def derived(self, key: str) -> Any:
        """What a reader derived from ``key``'s value (:meth:`derive`), or None. The reader
        checks it was derived from the very values it was just served."""
        return self._derived.get(key)

    def derive(self, key: str, value: Any) -> None:
        """Keep ``value`` beside ``key`` while ``key`` is held (dropped with it)."""
        with self._lock:
            if key in self._values:
                self._derived[key] = value

    def snapshot(self) -> Snapshot | None:
        """Taken before a read whose result may be stored (None: the L1 is not live)."""
        self._start()
        with self._lock:
            return (self._session, self._epoch) if self._live else None

    def put(self, snap: Snapshot, items: Iterable[tuple[str, Any, float]]) -> bool:
        """Store (key, value, monotonic expiry) read after ``snap``, unless one of the keys was
        invalidated since (or the listener restarted, or the log does not reach back)."""
        items = list(items)
        keys = {key for key, _, _ in items}
        with self._lock:
            if not self._live or snap[0] != self._session or self._invalidated(snap[1], keys):
                return False
            for key, value, expires in items:
                self._drop(key)
                size = _size(value) + len(key)
                self._values[key] = (value, expires, size)
                self._bytes += size
            while len(self._values) > _MAX_KEYS or self._bytes > _MAX_BYTES:
                self._drop(next(iter(self._values)))
        return True

    def _invalidated(self, since: int, keys: set[str]) -> bool:
        if since == self._epoch:
            return False
        if not self._log or self._log[0][0] > since + 1:
            return True  # the log no longer reaches back to the read's start
        for epoch, dropped in reversed(self._log):
            if epoch <= since:
                break
            if dropped is None or not dropped.isdisjoint(keys):
                return True
        return False

    # -- invalidation --------------------------------------------------------------------

    def _drop(self, key: str) -> None:
        held = self._values.pop(key, None)
        self._derived.pop(key, None)
        if held is not None:
            self._bytes -= held[2]

    def invalidate(self, keys: Iterable[str] | None) -> None:
        """Drop ``keys`` (None: everything); what a read in flight saw of them is not stored."""
        dropped = None if keys is None else frozenset(keys)
        with self._lock:
            self._epoch += 1
            self._log.append((self._epoch, dropped))
            if dropped is None:
                self._values.clear()
                self._derived.clear()
                self._bytes = 0
            else:
                for key in dropped:
                    self._drop(key)

    def _on_push(self, message: Any) -> None:
        keys = message[1] if len(message) > 1 else None
        if keys is None:
            self.invalidate(None)  # FLUSHDB / FLUSHALL
        else:
            self.invalidate(key.decode() if isinstance(key, bytes) else str(key) for key in keys)

    def _set_live(self, live: bool) -> None:
        if not live:
            self._connection = None
        with self._lock:
            self._live = live
            self._session += 1
            self._values.clear()
            self._derived.clear()
            self._bytes = 0

    # -- the listener --------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None or self._closed:
            return
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._listen, name="semcache-l1", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                self._track()
            except Exception as exc:  # noqa: BLE001 - any failure: L1 off, then reconnect
                logger.debug("semcache: L1 listener lost its connection: %s", exc)
            self._set_live(False)
            client, self._client = self._client, None
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
            if not self._closed:
                time.sleep(_RETRY)

    def _track(self) -> None:
        client = redis.Redis.from_url(
            self._url,
            protocol=3,
            socket_timeout=self._timeout,
            socket_connect_timeout=self._timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=1,
            client_name=LISTENER_NAME,
        )
        self._client = client
        if self._closed:
            return
        connection: Any = client.connection_pool.get_connection()
        connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self._prefix)
        if _text(connection.read_response()) != "OK":
            raise redis.ConnectionError("CLIENT TRACKING was refused")
        connection._parser.set_invalidation_push_handler(self._on_push)
        self._heard = time.monotonic()
        self._connection = connection
        self._set_live(True)
        sock = connection._sock
        while not self._closed:
            select.select([sock], [], [], _PING_EVERY)  # waits without the read lock
            with self._read_lock:
                _drain(connection)
                if time.monotonic() - self._heard < _PING_EVERY:
                    continue
                sent = time.monotonic()
                connection.send_command("PING")  # pushes before the PONG are handled first
                if _text(connection.read_response()) != "PONG":
                    raise redis.ConnectionError("the L1 listener's PING was not answered")
                self._heard = sent

    def _catch_up(self) -> bool:
        """Handle the pushes already received, in the caller's thread (a change another client
        made just before this read has usually arrived: Redis sends a push before its reply to
        the writer). False when that cannot be done now (no listener, or it is stuck reading)."""
        connection = self._connection
        # a short wait, not a try: the listener may hold the lock while it waits for the GIL
        # that this (busy) thread holds; waiting hands it over. A PONG that does not come
        # (hung Redis) costs this read at most the wait, then it goes to Redis.
        if connection is None or not self._read_lock.acquire(timeout=_CATCH_UP_WAIT):
            return False
        try:
            _drain(connection)
        except Exception:  # noqa: BLE001 - the listener meets the same error and resets
            return False
        finally:
            self._read_lock.release()
        return True

    def live(self) -> bool:
        """Whether values are served and stored (tracking is on)."""
        with self._lock:
            return self._live

    def close(self) -> None:
        """Stop the listener and drop everything; no use after this."""
        self._closed = True
        self._set_live(False)
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.connection_pool.disconnect()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=0.2)  # a daemon: it ends on its own once its read fails


_registry_lock = threading.Lock()
_registry: dict[tuple[str, str], tuple[L1Cache, int]] = {}


def _after_fork_in_child() -> None:
    """A forked child has no listener thread (and shares the parent's socket): its L1s start
    empty and off, and get a listener of their own on first use."""
    global _registry_lock
    _registry_lock = threading.Lock()
    for l1, _ in list(_registry.values()):
        l1._lock = threading.Lock()
        l1._live = False
        l1._session += 1
        l1._values.clear()
        l1._derived.clear()
        l1._bytes = 0
        l1._thread = None
        l1._client = l1._connection = None  # the parent's connection: never read from here
        l1._read_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def acquire_l1(url: str, prefix: str, *, socket_timeout: float) -> L1Cache:
    """The process's L1 for this Redis and index prefix (one listener for every cache on it);
    give it back with :func:`release_l1`."""
    with _registry_lock:
        l1, users = _registry.get((url, prefix), (None, 0))
        if l1 is None:
            l1 = L1Cache(url, prefix, socket_timeout=socket_timeout)
        _registry[(url, prefix)] = (l1, users + 1)
        return l1


def release_l1(l1: L1Cache) -> None:
    """One user fewer; the last one closes it."""
    with _registry_lock:
        key = (l1._url, l1._prefix)
        held, users = _registry.get(key, (None, 0))
        if held is not l1:
            return
        if users > 1:
            _registry[key] = (l1, users - 1)
            return
        del _registry[key]
    l1.close()
