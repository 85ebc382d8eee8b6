"""A local stream server for the tests of cameras that go quiet (tests/test_demo.py,
tests/test_robustness.py): it accepts every connection and, after an optional reply,
never sends another byte."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_server(path: str, reply: bytes = b"") -> Iterator[tuple[str, list[socket.socket]]]:
    """Yields its URL (http://127.0.0.1:PORT/path) and the connections it holds open.

    With a `reply`, each connection's request is read and answered with it first (e.g. an
    HTTP header and a few MJPEG frames); without, nothing is read or sent at all."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)  # so the loop sees `stop`
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            held.append(conn)  # kept open, never closed here: the stream stalls
            if reply:
                conn.recv(4096)
                conn.sendall(reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/{path}", held
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        server.close()
