"""Property tests: whatever chunking a T=0 card uses, the session returns the same answer."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.scripted import ScriptedReader

SELECT = bytes.fromhex("00A4040007A000000003101000")


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, int, int]]]:
    data = draw(st.binary(min_size=0, max_size=600))
    sizes: list[int] = []
    remaining = len(data)
    while remaining > 0:
        size = draw(st.integers(min_value=1, max_value=min(256, remaining)))
        sizes.append(size)
        remaining -= size
    script: list[tuple[bytes, int, int]] = []
    offset = 0
    # The card answers 61xx announcing the next chunk; each GET RESPONSE carries one
    # chunk and announces the following one, the last ends with the final status word.
    if sizes:
        script.append((b"", 0x61, sizes[0] & 0xFF))
    for index, size in enumerate(sizes):
        chunk = data[offset : offset + size]
        offset += size
        if index + 1 < len(sizes):
            script.append((chunk, 0x61, sizes[index + 1] & 0xFF))
        else:
            script.append((chunk, 0x90, 0x00))
    if not sizes:
        script.append((b"", 0x90, 0x00))
    return data, script


@settings(max_examples=60, deadline=None)
@given(chunked())
async def test_get_response_chains_reassemble(
    case: tuple[bytes, list[tuple[bytes, int, int]]],
) -> None:
    """Data split over any number of 61xx/GET RESPONSE rounds comes back whole and in order."""
    data, script = case
    reader = ScriptedReader(script)
    session = await reader.connect(reader.name)
    response = await session.transmit(SELECT)
    assert (response.data, response.sw) == (data, 0x9000)
    assert all(sent[:4] == b"\x00\xc0\x00\x00" for sent in reader.sent[1:])
