"""Running the PSP simulators: in a thread for tests and benches, or in the foreground for
``etika sim psp``.

::

    with RestGatewayThread(stripe_app(acquirer)) as gateway:   # uvicorn on a free port
        url = gateway.url
    run("iso8583", port=8583, faults="latency=0.2")           # blocks until interrupted
    run("stripe", port=0)          # any free port; the first line printed says which
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

import uvicorn

from simulators.psp.acquirer import Acquirer
from simulators.psp.errors import SimulatorKeyError, SimulatorListenError
from simulators.psp.faults import Faults, parse_faults
from simulators.psp.iso_host import Iso8583Host
from simulators.psp.keys import KINDS, private_key_path
from simulators.psp.paypal_gateway import paypal_app
from simulators.psp.stripe_gateway import stripe_app

__all__ = ["KINDS", "RestGatewayThread", "build_app", "free_port", "run"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def build_app(kind: str, acquirer: Acquirer, faults: Faults) -> Any:
    if kind == "stripe":
        return stripe_app(acquirer, faults)
    if kind == "paypal":
        return paypal_app(acquirer, faults)
    raise ValueError(f"{kind!r} is not a REST gateway kind (stripe, paypal)")


class RestGatewayThread:
    """A uvicorn server on a free loopback port, in a daemon thread, stopped on exit."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="critical",
                                lifespan="off", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name=f"psp-rest-{self.port}",
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> RestGatewayThread:
        self._thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            if not self._thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError(f"the REST gateway did not start on {self.host}:{self.port}")

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> RestGatewayThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listen_error(host: str, port: int, exc: OSError) -> SimulatorListenError:
    return SimulatorListenError(
        f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
        "(or stop what uses it) or check --host",
        host=host, port=port,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (0: any free port), bound here so that a taken
    port is one clear line, not a traceback from asyncio or uvicorn's own exit status, and
    the port announced is the one served (the server is handed this very socket)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise _listen_error(host, port, exc) from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise _listen_error(host, port, exc) from exc
    return sock


def _announce(kind: str, host: str, port: int, faults: str | None,
              control_port: int | None = None) -> None:
    """The first line printed: the port actually served (``--port 0`` asks for any)."""
    print(f"etika sim psp: {kind} on {host}:{port}"
          + (f" (control port {control_port})" if control_port is not None else "")
          + (f" with faults {faults}" if faults else ""), flush=True)


async def _serve_iso(host_sim: Iso8583Host, listener: socket.socket,
                     control_port: int | None, faults: str | None) -> None:
    """The host on ``listener``, and its control port when asked
    (:mod:`simulators.psp.control`; 0: any free port, announced)."""
    port = await host_sim.start(sock=listener)
    control = None
    if control_port is not None:
        from simulators.psp.control import ControlServer

        control = ControlServer(host_sim, host="127.0.0.1", port=control_port)
        try:
            control_port = await control.start()
        except OSError as exc:
            raise _listen_error("127.0.0.1", control_port, exc) from exc
    _announce("iso8583", host_sim.host, port, faults, control_port)
    try:
        await host_sim.serve_forever()
    finally:
        if control is not None:
            await control.close()


def run(kind: str, *, host: str = "127.0.0.1", port: int, faults: str | None = None,
        key: Path | None = None, control_port: int | None = None,
        capture: Path | None = None) -> int:
    """Serve one simulator in the foreground until interrupted; returns the exit status."""
    if kind not in KINDS:
        raise ValueError(f"unknown PSP kind {kind!r}; known: {', '.join(KINDS)}")
    fault_state = parse_faults(faults)
    key_path = key or private_key_path(kind)
    try:
        acquirer = Acquirer(key_path.read_bytes())
    except OSError as exc:
        raise SimulatorKeyError(f"cannot read the P2PE private key {key_path}: "
                                f"{exc.strerror}; give a PEM file with --key",
                                path=str(key_path)) from exc
    except (ValueError, TypeError) as exc:  # cryptography: not a PEM, encrypted, wrong type
        raise SimulatorKeyError(f"{key_path} is not an unencrypted PEM RSA or EC P-256 "
                                "private key; give one with --key",
                                path=str(key_path)) from exc
    listener = _listen(host, port)
    if kind == "iso8583":
        with contextlib.ExitStack() as files:
            files.callback(listener.close)
            sink = files.enter_context(capture.open("ab")) if capture is not None else None
            host_sim = Iso8583Host(acquirer, fault_state, host=host, port=port, capture=sink)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve_iso(host_sim, listener, control_port, faults))
        return 0
    if control_port is not None or capture is not None:
        listener.close()
        raise ValueError("--control-port and --capture are for --kind iso8583")
    _announce(kind, host, listener.getsockname()[1], faults)
    config = uvicorn.Config(build_app(kind, acquirer, fault_state), host=host,
                            port=listener.getsockname()[1], log_level="warning")
    # uvicorn re-raises the SIGINT it captured once it has shut down.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[listener])
    listener.close()
    return 0
