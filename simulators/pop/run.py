"""``etika sim pop``: build the stand-in from its options and serve until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from pathlib import Path

from edge_sync.pop import DEFAULT_AUDIENCE
from simulators.pop.errors import PopLedgerError, PopListenError
from simulators.pop.faults import parse_faults
from simulators.pop.keys import parse_key_file_option
from simulators.pop.ledger import PopLedger
from simulators.pop.server import PopServer

__all__ = ["build_server", "serve"]


def build_server(data_dir: Path, *, confirm_delay_ms: int = 0, faults: str | None = None,
                 key_files: list[str] | None = None, audience: str | None = None,
                 capture: Path | None = None) -> PopServer:
    """The stand-in with its ledger in ``data_dir/pop-ledger.sqlite3`` and its keys loaded."""
    fault_state = parse_faults(faults)  # refuse a bad spec before touching anything
    parsed = [parse_key_file_option(text) for text in key_files or []]
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PopLedgerError(f"cannot create the PoP data directory {data_dir}: "
                             f"{exc.strerror or exc}", path=str(data_dir)) from exc
    ledger = PopLedger(data_dir / "pop-ledger.sqlite3", confirm_delay_s=confirm_delay_ms / 1000)
    ledger.verify_chain()  # a tampered ledger is refused at start, not served
    sink = None
    if capture is not None:
        try:
            sink = capture.open("ab")
        except OSError as exc:
            raise PopLedgerError(f"cannot open the capture file {capture}: "
                                 f"{exc.strerror or exc}", path=str(capture)) from exc
    server = PopServer(ledger, faults=fault_state, audience=audience or DEFAULT_AUDIENCE,
                       capture=sink)
    for terminal_id, path, version in parsed:
        server.keys.register_file(terminal_id, path, version)
    return server


def serve(server: PopServer, host: str, port: int, *, tls_cert: Path | None = None,
          tls_key: Path | None = None) -> int:
    """Listen on ``host:port`` (0: any free port), print the URL, serve until SIGINT/SIGTERM."""
    context = None
    if tls_cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(str(tls_cert), str(tls_key or tls_cert))
        except (OSError, ssl.SSLError) as exc:
            raise PopListenError(f"cannot load the TLS certificate/key {tls_cert}: {exc}"
                                 ) from exc

    async def main() -> None:
        try:
            bound = await server.start(host, port, context)
        except OSError as exc:
            raise PopListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                                 "choose another --port or --host", port=port) from exc
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        scheme = "https" if context else "http"
        print(f"etika sim pop: listening on {scheme}://{host}:{bound} "
              f"(audience {server.audience}, confirm delay "
              f"{server.ledger.confirm_delay_s * 1000:g} ms)", flush=True)
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    server.ledger.close()
    return 0
