"""A TCP forwarder on a free 127.0.0.1 port that can slow down or hang a real Redis behind it.

``delay``: seconds added before each chunk of reply is passed on (a slow Redis).
``hang()``: requests are swallowed from then on, so nothing is ever answered (a hung Redis);
``senders()`` tells how many client connections sent anything since the last ``mark()``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Self


class DelayProxy:
    def __init__(self, upstream_port: int, *, delay: float = 0.0) -> None:
        self.delay = delay
        self._upstream = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._hung = False
        self._senders: set[int] = set()
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        self._next_id = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def hang(self) -> None:
        with self._lock:
            self._hung = True

    def mark(self) -> None:
        with self._lock:
            self._senders.clear()

    def senders(self) -> int:
        with self._lock:
            return len(self._senders)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self._upstream))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._next_id += 1
                conn_id = self._next_id
                self._sockets += [client, upstream]
            threading.Thread(target=self._replies, args=(upstream, client), daemon=True).start()
            threading.Thread(
                target=self._requests, args=(conn_id, client, upstream), daemon=True
            ).start()

    def _requests(self, conn_id: int, client: socket.socket, upstream: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                with self._lock:
                    self._senders.add(conn_id)
                    hung = self._hung
                if not hung:
                    upstream.sendall(data)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _replies(self, upstream: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
