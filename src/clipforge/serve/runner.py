"""Running the app: in the foreground (the CLI) or in a background thread (tests, notebooks)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from .. import discovery


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0 for any free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    # The protocol spelt out (IPPROTO_TCP): asyncio sets TCP_NODELAY only on sockets that say
    # so, and without it every request on a kept-alive connection waits 40 ms for a delayed ACK.
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    return sock


def serve_forever(app, sock: socket.socket, announce: Sequence[tuple[Path, str]] = (), log_level: str = "info",
                  runs: tuple[str, str] = ("auto", "auto")) -> None:
    """Serve on ``sock`` until stopped (SIGINT, SIGTERM). Each (collection path, name) in
    ``announce`` is recorded as served by this process meanwhile, so that commands on this
    machine can hand their queries to it (see ``clipforge.discovery``), with ``runs``, the
    server's device and precision settings."""
    host, port = sock.getsockname()[:2]
    instance = discovery.new_instance()
    url = discovery.local_url(host, port)
    records = [discovery.announce(path, name, url, instance, runs) for path, name in announce]
    server = _Server(uvicorn.Config(_stamped(app, instance), log_level=log_level),
                     on_shutdown=lambda: discovery.withdraw(records))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn passes Ctrl-C on once it has shut down: a clean stop
        pass
    finally:
        discovery.withdraw(records)


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_shutdown`` as soon as it starts to shut down: before it
    passes a SIGTERM on to the process, which ends it without unwinding."""

    def __init__(self, config: uvicorn.Config, on_shutdown):
        super().__init__(config)
        self._on_shutdown = on_shutdown

    async def shutdown(self, sockets=None) -> None:
        self._on_shutdown()
        await super().shutdown(sockets)


def _stamped(app, instance: str):
    """``app`` with this server's instance token in every response's headers."""
    header = (discovery.INSTANCE_HEADER.encode(), instance.encode())

    async def stamped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)

        async def send_stamped(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        return await app(scope, receive, send_stamped)

    return stamped


class BackgroundServer:
    """uvicorn in a thread, on a free loopback port unless one is given."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        self.app = app
        self._socket = listen(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "BackgroundServer":
        if self._server.started:
            return self
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
