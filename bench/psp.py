"""Benchmark: authorisations per second through the ISO 8583 connector.

Ours: :class:`edge_sync.connectors.Iso8583Connector` doing everything a payment costs the
terminal — P2PE envelope (RSA-OAEP to the acquirer's key), DE 55 with an ARQC, the message
built and encoded by pyiso8583, the 2-byte length-prefixed frame over TCP, the answer read,
decoded, matched by STAN and classified — against a host process that answers each 0200 with
a 0210 (decode, build, encode; no issuer work), ``--concurrency`` requests in flight on one
multiplexed link.

Raw limit, same loopback, same run: frames of the same size through a bare asyncio client
and a length-prefixed echo server process, same concurrency, one connection.

Also reported (not in the ratio): the full simulated acquirer (``Iso8583Host``: P2PE
decryption, ARQC verification, ledger) behind the same connector.

Prints one JSON object with both rates and their ``ratio``.

    .venv/bin/python bench/psp.py [--authorisations 3000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import struct
import sys
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from edge_sync.connectors import (
    Amount,
    AuthorisationRequest,
    CardDataEncryptor,
    CardInput,
    HostContext,
    Iso8583Connector,
    Iso8583Settings,
)
from edge_sync.connectors.iso8583_messages import build_authorisation, encode_icc
from edge_sync.connectors.iso8583_spec import MTI_RESPONSE, decode, encode, frame
from hsm.cards import CardData
from simulators.psp.cards import icc_data
from simulators.psp.keys import private_key_path, public_key_path
from simulators.psp.server import free_port

PAN = "4761739001010010"
AMOUNT = Amount(2500, "MAD", 504, 2)


# --- server processes -----------------------------------------------------------------


async def _serve(mode: str, port: int, ready: Any) -> None:
    if mode == "acquirer":
        from simulators.psp.acquirer import Acquirer
        from simulators.psp.iso_host import Iso8583Host

        host = Iso8583Host(Acquirer(private_key_path("iso8583").read_bytes()), port=port)
        await host.start()
        ready.set()
        await asyncio.Event().wait()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                body = await reader.readexactly(struct.unpack(">H", head)[0])
                if mode == "echo":
                    writer.write(head + body)
                else:
                    fields = decode(body)
                    answer = {"t": MTI_RESPONSE[fields["t"]], "39": "00", "38": "123456"}
                    answer.update({k: fields[k] for k in ("11", "37", "48") if k in fields})
                    writer.write(frame(encode(answer)))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    ready.set()
    async with server:
        await server.serve_forever()


def _server_process(mode: str, port: int, ready: Any) -> None:
    warnings.filterwarnings("ignore", message=".*TripleDES.*")
    asyncio.run(_serve(mode, port, ready))


class ServerProcess:
    def __init__(self, mode: str) -> None:
        self.port = free_port()
        self._ready = multiprocessing.Event()
        self._process = multiprocessing.Process(target=_server_process, daemon=True,
                                                args=(mode, self.port, self._ready))

    def __enter__(self) -> ServerProcess:
        self._process.start()
        if not self._ready.wait(20):
            raise RuntimeError("the bench's server process did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._process.terminate()
        self._process.join(5)


# --- clients --------------------------------------------------------------------------


def _requests(count: int) -> list[AuthorisationRequest]:
    encryptor = CardDataEncryptor(CardData(PAN, "3012"))
    emv = encode_icc(icc_data(PAN, amount=AMOUNT.minor))
    card = CardInput(encryptor=encryptor, emv_data=emv, pan_sequence="01")
    return [AuthorisationRequest(uuid.uuid4(), AMOUNT, card) for _ in range(count)]


async def ours(port: int, count: int, concurrency: int, progress: Progress, label: str
               ) -> tuple[float, int]:
    task = progress.add_task(label, total=count)
    context = HostContext("bench", "504001", "ETK00001", "ETIKA0000000001", "ETIKA BENCH")
    connector = Iso8583Connector(Iso8583Settings(
        context, "127.0.0.1", port, public_key_path("iso8583").read_bytes(), timeout_s=30))
    requests = _requests(count)
    await connector.echo()  # connect outside the timing
    window = asyncio.Semaphore(concurrency)
    approved = 0

    async def one(request: AuthorisationRequest) -> None:
        nonlocal approved
        async with window:
            answer = await connector.authorise(request)
            approved += answer.approved
            progress.advance(task, 1)

    start = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    elapsed = time.perf_counter() - start
    await connector.aclose()
    return count / elapsed, approved


async def raw(port: int, count: int, size: int, concurrency: int, progress: Progress
              ) -> float:
    task = progress.add_task("raw length-prefixed TCP echo", total=count)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = struct.pack(">H", size) + b"x" * size
    window = asyncio.Semaphore(concurrency)
    done = asyncio.Event()
    received = 0

    async def read_all() -> None:
        nonlocal received
        while received < count:
            head = await reader.readexactly(2)
            await reader.readexactly(struct.unpack(">H", head)[0])
            received += 1
            window.release()
            progress.advance(task, 1)
        done.set()

    start = time.perf_counter()
    reading = asyncio.create_task(read_all())
    for _ in range(count):
        await window.acquire()
        writer.write(payload)
    await done.wait()
    elapsed = time.perf_counter() - start
    await reading
    writer.close()
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--authorisations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*TripleDES.*")  # pyemv's, not ours
    sample = _requests(1)[0]
    envelope = sample.card.encryptor.envelope_for(public_key_path("iso8583").read_bytes(),
                                                  sample.idempotency_key.encode())
    size = len(encode(build_authorisation(
        HostContext("bench", "504001", "ETK00001", "ETIKA0000000001", "ETIKA BENCH"),
        sample, stan="000001", now=datetime.now(UTC), p2pe_envelope=envelope)))
    our_rates, raw_rates = [], []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  transient=True) as progress:
        with ServerProcess("answer") as answering, ServerProcess("echo") as echo:
            for _ in range(args.rounds):  # alternate, best of each: the machine is shared
                raw_rates.append(asyncio.run(raw(echo.port, args.authorisations, size,
                                                 args.concurrency, progress)))
                rate, approved = asyncio.run(ours(
                    answering.port, args.authorisations, args.concurrency, progress,
                    "etika ISO 8583 connector → answering host"))
                if approved != args.authorisations:
                    raise RuntimeError("the answering host declined; the bench is broken")
                our_rates.append(rate)
        full_count = max(200, args.authorisations // 5)
        with ServerProcess("acquirer") as acquirer:
            full_rate, full_approved = asyncio.run(ours(
                acquirer.port, full_count, args.concurrency, progress,
                "etika ISO 8583 connector → full simulated acquirer"))
    our_rate, raw_rate = max(our_rates), max(raw_rates)
    print(json.dumps({
        "bench": "psp",
        "authorisations": args.authorisations,
        "concurrency": args.concurrency,
        "frame_bytes": size + 2,
        "ours_iso8583_auth_per_s": round(our_rate, 1),
        "raw_tcp_echo_frames_per_s": round(raw_rate, 1),
        "ratio": round(our_rate / raw_rate, 3),
        "full_simulated_acquirer_auth_per_s": round(full_rate, 1),
        "full_simulated_acquirer_approved": f"{full_approved}/{full_count}",
        "rounds": {"ours": [round(r, 1) for r in our_rates],
                   "raw": [round(r, 1) for r in raw_rates]},
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
