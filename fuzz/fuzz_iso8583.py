"""Atheris harness: an ISO 8583 answer as the terminal reads it (decode, then read_answer).

Allowed: fields and a parsed answer, or ``ValueError`` — the documented contract of both
(``iso8583.DecodeError`` is a ``ValueError``); the connector maps it to
``MalformedResponseError``. Anything else is a crash.
``python fuzz/fuzz_iso8583.py -max_total_time=60`` (``make fuzz``).
"""

from __future__ import annotations

import sys
import warnings

import atheris

warnings.filterwarnings("ignore")

# Only the codec and our two modules are instrumented: instrumenting everything the
# connectors package pulls in (httpx, cryptography, pkcs11) takes minutes for nothing.
with atheris.instrument_imports(include=["iso8583", "edge_sync.connectors.iso8583_spec",
                                         "edge_sync.connectors.iso8583_messages"]):
    from edge_sync.connectors.iso8583_messages import read_answer
    from edge_sync.connectors.iso8583_spec import decode


def check(data: bytes) -> None:
    try:
        fields = decode(data)
    except ValueError:
        return
    try:
        read_answer(fields)
    except ValueError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
