"""Atheris harness: the PIN pad link (frame decoder, then the response decoder).

The frame decoder must never raise on a byte stream; each complete frame goes to
``decode_response`` and ``decode_request``, which may refuse it only with ``ValueError``
(their documented contract: the driver maps it to ``PinPadFrameError`` and NAKs).
``python fuzz/fuzz_pinpad_frame.py -max_total_time=60`` (``make fuzz``).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from drivers.pinpad.frame import Frame, FrameDecoder
    from drivers.pinpad.messages import decode_request, decode_response


def check(data: bytes) -> None:
    decoder = FrameDecoder()
    for event in decoder.feed(data):
        if isinstance(event, Frame):
            for decode in (decode_response, decode_request):
                try:
                    decode(event.message)
                except ValueError:
                    pass


def main() -> None:
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
