"""Running the service: uvicorn on a socket bound here, reloads on SIGHUP and on file change, and
a graceful shutdown on SIGTERM or Ctrl-C (in-flight requests drain, then the decision log is
flushed)."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from datetime import datetime, timezone
from types import FrameType

import uvicorn

from agp.engine import Engine
from agp.serve.app import DEFAULTS, ReloadResult, ServeOptions, Service

# How often the policy files are polled: a change serves within 2 s (docs/serve.md).
WATCH_INTERVAL = 0.5
# How long a shutdown waits for requests in flight before it closes their connections.
DRAIN_SECONDS = 10


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one, which the caller reads back)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn raises the signal again once it has shut down, which would end the process
        # by the signal; a drained shutdown is a normal exit (status 0).
        self._captured_signals.clear()


def _stamp() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Runner:
    """One service on one socket: `run` serves until SIGTERM, SIGINT or `stop`, then drains and
    closes the engine. The socket listens already, so callers may connect before `run` starts."""

    def __init__(self, engine: Engine, sock: socket.socket,
                 options: ServeOptions = DEFAULTS, *, watch: bool = True) -> None:
        self.engine = engine
        self.sock = sock
        self.service = Service(engine, options)
        self.watch = watch
        config = uvicorn.Config(self.service.app, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=DRAIN_SECONDS,
                                timeout_keep_alive=30, server_header=False)
        self.server = _Server(config)
        self._reloading = threading.Lock()

    def reload(self) -> None:
        """Reload now (SIGHUP); a reload asked for while one runs is folded into it."""
        if self._reloading.acquire(blocking=False):
            try:
                self.service.reload()
            finally:
                self._reloading.release()

    def stop(self) -> None:
        """Begin a graceful shutdown (as SIGTERM does)."""
        self.server.should_exit = True

    def run(self) -> None:
        service = self.service
        if self.watch:
            self.engine.watch(WATCH_INTERVAL, on_reload=lambda diagnostics: service.reloaded(
                ReloadResult("ok", _stamp(), policy=self.engine.policy_hash)),
                on_error=lambda exc: service.reloaded(ReloadResult("error", _stamp(),
                                                                   error=str(exc))))
        try:
            # uvicorn's choice of loop: uvloop where it is installed (a dependency of agp).
            with asyncio.Runner(loop_factory=self.server.config.get_loop_factory()) as runner:
                runner.run(self._main())
        finally:
            self.engine.close()  # stops the watcher and flushes the decision log
            service.close()  # flushes the spans

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        hup = _main_thread()  # signals reach only the main thread (tests serve from others)
        if hup:
            loop.add_signal_handler(signal.SIGHUP, loop.run_in_executor, None, self.reload)
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            if hup:
                loop.remove_signal_handler(signal.SIGHUP)


def serve(engine: Engine, sock: socket.socket, options: ServeOptions = DEFAULTS) -> None:
    """Serve `engine` on `sock` until SIGTERM or SIGINT; then drain and close the engine."""
    Runner(engine, sock, options).run()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
