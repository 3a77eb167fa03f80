"""Hostile ISO 8583 answers through the router over loopback TCP: a PspError or a
well-typed answer, never a raw Python exception (issue #17 "fuzz targets for each boundary")."""

from __future__ import annotations

import asyncio
import struct
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_sync.connectors import (
    Amount,
    AuthorisationRequest,
    BreakerSettings,
    CardInput,
    Iso8583Connector,
    Iso8583Settings,
    PspResponse,
    Router,
    RouteRule,
    RoutingKey,
)
from edge_sync.connectors.errors import PspError
from edge_sync.connectors.iso8583_spec import MTI_RESPONSE, decode, encode, frame
from tests.fixtures.psp import host_context

pytestmark = [pytest.mark.network]

MAD = Amount(2500, "MAD", 504, 2)
KEY = RoutingKey(network="visa", currency="MAD", amount_minor=2500)


class _Encryptor:
    def envelope_for(self, psp_public_key_pem: bytes, context: bytes) -> bytes:
        return b"\x01" * 16


async def _no_sleep(_: float) -> None:
    return None


#: One scripted answer: raw bytes to frame as they are, or fields merged into a well-formed
#: answer to the request (its response MTI and STAN, so the connector matches it).
Answer = bytes | dict[str, str]


async def _authorise_against(answers: list[Answer]) -> PspResponse:
    script = iter(answers)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                request = decode(await reader.readexactly(length))
                answer = next(script, None)
                if answer is None:
                    break
                if isinstance(answer, bytes):
                    writer.write(struct.pack(">H", len(answer) % 65536) + answer)
                else:
                    fields = {"t": MTI_RESPONSE.get(request["t"], "0110"),
                              "11": request["11"], **answer}
                    try:
                        writer.write(frame(encode(fields)))
                    except ValueError:
                        writer.write(frame(b"\x00garbage"))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connector = Iso8583Connector(Iso8583Settings(host_context("acq"), "127.0.0.1", port,
                                                 b"pem", timeout_s=0.5))
    router = Router([RouteRule("all", ("acq",))], {"acq": connector}, {},
                    breakers={"acq": BreakerSettings(failures=100, reset_s=60)},
                    sleep=_no_sleep)
    try:
        request = AuthorisationRequest(uuid.uuid4(), MAD, CardInput(encryptor=_Encryptor()))
        return await router.authorise(request, KEY)
    finally:
        await router.aclose()
        server.close()
        await server.wait_closed()


_TEXT = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
_FIELDS = st.fixed_dictionaries({}, optional={
    "39": st.sampled_from(["00", "05", "16", "25", "30", "91", "x", "", "0"]) | _TEXT,
    "38": _TEXT, "37": _TEXT, "44": _TEXT,
    "48": st.sampled_from(["", "01003abc", "99999", "01036" + "0" * 36]) | _TEXT,
    "55": st.sampled_from(["", "9108AABBCCDDEEFF0011", "91", "ZZ", "9F"]),
})
_ANSWER: st.SearchStrategy[Any] = _FIELDS | st.binary(max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answers=st.lists(_ANSWER, min_size=1, max_size=4))
def test_fuzzed_iso_answers_never_escape(answers: list[Answer]) -> None:
    """Any answers to an authorisation and its reversal give a PspError or a well-typed
    answer whose codes the kernel can use."""
    try:
        response = asyncio.run(_authorise_against(answers))
    except PspError:
        return
    assert isinstance(response.code, str) and len(response.code) == 2
    assert isinstance(response.emv_data, bytes)
    approval = response.reference.approval_code
    assert approval is None or (isinstance(approval, str) and approval.isascii())
