"""``etika sim pinpad`` and ``etika pinpad get-pin`` as a cashier would run them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.pinpad.device import DEFAULT_AES_BDK, DEFAULT_TDES_BDK
from simulators.pinpad.host import verify_pin
from tests.fixtures.pinpad import TEST_PAN, TEST_PIN

pytestmark = pytest.mark.hardware

ETIKA = [sys.executable, "-m", "terminal.cli.main"]


class SimProcess:
    def __init__(self, *options: str) -> None:
        self.process = subprocess.Popen(
            [*ETIKA, "sim", "pinpad", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.path = self.process.stdout.readline().strip()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def sim_process() -> Iterator[type[SimProcess]]:
    started: list[SimProcess] = []

    class Tracked(SimProcess):
        def __init__(self, *options: str) -> None:
            super().__init__(*options)
            started.append(self)

    yield Tracked
    for sim in started:
        if sim.process.poll() is None:
            sim.process.kill()
            sim.process.wait()


def _get_pin(path: str, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ETIKA, "--data-dir", str(data_dir), "pinpad", "get-pin", "--port", path,
         "--amount", "12.00", "--currency", "MAD", "--timeout", "5", *extra],
        input=TEST_PAN + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options",                                   "bdk",            "fmt"),
    [
        (("--pin", TEST_PIN),                         DEFAULT_TDES_BDK, 0),
        (("--scheme", "aes", "--pin", TEST_PIN),      DEFAULT_AES_BDK,  4),
        (("--bdk", DEFAULT_AES_BDK.hex(), "--ksn", "1234567890123456000000FF",
          "--pin", TEST_PIN, "--faults", "noise,nak=1"),
                                                      DEFAULT_AES_BDK,  4),
    ],
)  # fmt: skip
def test_get_pin_against_the_simulator(
    sim_process: type[SimProcess], data_dir: Path, options: tuple[str, ...], bdk: bytes, fmt: int
) -> None:
    """get-pin prints ksn/pin_block/format; the host recovers the PIN; nothing leaks."""
    sim = sim_process(*options)
    assert sim.path.startswith("/dev/pts/")
    result = _get_pin(sim.path, data_dir, "--json")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"ksn", "pin_block", "format"}
    assert output["format"] == fmt
    verify_pin(bdk, bytes.fromhex(output["ksn"]), bytes.fromhex(output["pin_block"]),
               TEST_PAN, TEST_PIN, fmt)  # fmt: skip
    assert sim.stop() == 0
    written = [p.read_bytes() for p in data_dir.rglob("*") if p.is_file()]
    for blob in [result.stdout.encode(), result.stderr.encode(), *written]:
        assert TEST_PIN.encode() not in blob
        assert TEST_PAN.encode() not in blob


def test_cancel_is_a_one_line_error(sim_process: type[SimProcess], data_dir: Path) -> None:
    """A cardholder cancel ends get-pin with exit 1 and one line on stderr."""
    sim = sim_process("--faults", "cancel")
    result = _get_pin(sim.path, data_dir)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("etika: error: PIN entry on ")
    assert sim.stop() == 0


def test_sim_exits_cleanly_on_sigint(sim_process: type[SimProcess]) -> None:
    """Ctrl-C (SIGINT) stops the simulator with exit status 0."""
    sim = sim_process()
    sim.process.send_signal(signal.SIGINT)
    # Wait for the SIGINT exit itself: stop() sends SIGTERM to a process still running,
    # which on a loaded machine raced the Ctrl-C handling (exit -15).
    assert sim.process.wait(timeout=30) == 0
    assert sim.stop() == 0


@pytest.mark.parametrize(
    ("options",                                        "message"),
    [
        (("--bdk", "00" * 16),                             "--bdk and --ksn together"),
        (("--bdk", "zz", "--ksn", "00" * 10),              "--bdk must be hexadecimal"),
        (("--pin", "12"),                                  "--pin must be 4 to 12 digits"),
        (("--faults", "explode"),                          "unknown fault 'explode'"),
    ],
)  # fmt: skip
def test_sim_option_errors(options: tuple[str, ...], message: str) -> None:
    """Bad simulator options: one clear line, non-zero exit, no traceback, no path."""
    result = subprocess.run(
        [*ETIKA, "sim", "pinpad", *options], capture_output=True, text=True, timeout=30
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("stdin",               "extra",                    "message"),
    [
        ("1234\n",              (),                         "PAN on standard input"),
        ("",                    (),                         "PAN on standard input"),
        (TEST_PAN + "\n",       ("--amount", "12.005"),     "has 3 decimals"),
        (TEST_PAN + "\n",       ("--currency", "XXX"),      "unknown currency"),
    ],
)  # fmt: skip
def test_get_pin_input_errors(stdin: str, extra: tuple[str, ...], message: str) -> None:
    """Bad PAN, amount or currency: a one-line error that never echoes the PAN."""
    result = subprocess.run(
        [*ETIKA, "pinpad", "get-pin", "--port", "/dev/null", "--amount", "12.00", *extra],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert result.stderr.count("\n") == 1
    assert TEST_PAN not in result.stderr


def test_missing_port_is_a_port_error(data_dir: Path) -> None:
    """A port that does not exist: PinPadPortError as JSON with --json, exit 1."""
    result = _get_pin("/dev/etika-no-such-port", data_dir, "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)
    assert error["type"] == "PinPadPortError"
    assert error["port"] == "/dev/etika-no-such-port"
