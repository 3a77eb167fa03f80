"""Every other side of the counter, on loopback, for ``etika demo`` and ``scripts/demo.py``.

:class:`Fleet` works on a copy of the profile in its work directory and moves each link of
that copy to what it starts:

* the profile's acquirers: ISO 8583 hosts and the Stripe/PayPal-like REST gateways
  (``etika sim psp``);
* PIN pads and the receipt printer on pseudo-terminals (``etika sim pinpad|printer``);
* the PoP back end (``etika sim pop``, its own SQLite ledger);
* pcscd with vsmartcard-vpcd's two readers (the one running, or ours), and simulated cards
  plugged into them (``etika sim card``); :meth:`Fleet.pcscd` says False when pcscd cannot
  run here, and the caller uses in-process cards instead;
* the platform on SQLite (``etika platform serve``) behind Mosquitto when it is installed
  (the shipped configuration and ACLs, TLS with the test PKI's client certificates), over
  HTTPS otherwise; and the terminal's outbox worker (``etika sync run``) draining to it,
  to the PSPs and to the PoP back end.

Every server that can is started on port 0 and says which port it bound (no other process
can take a port between our choice and its bind); Mosquitto cannot, and is retried on fresh
ports when they were taken (:func:`simulators.demo.broker.start_mosquitto`). Each is a
child process of :class:`~simulators.demo.processes.Processes`, stopped by PID
by :meth:`Fleet.stop` (the demo calls it on exit, whatever happened).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import httpx

from edge_sync.pki import TestPki
from simulators.demo.broker import start_mosquitto
from simulators.demo.processes import (
    ETIKA,
    DemoError,
    Processes,
    etika_env,
    wait_for_port,
)

__all__ = ["CONTACTLESS_READER", "CONTACT_READER", "Fleet", "mosquitto_binary",
           "platform_subscribed"]

CONTACT_READER = "Virtual PCD 00 00"
CONTACTLESS_READER = "Virtual PCD 00 01"
VPCD_PORTS = {CONTACT_READER: 35963, CONTACTLESS_READER: 35964}
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
#: What ``etika sim psp`` and ``etika platform serve`` print once listening (port 0 given).
_PSP_LISTENING = r"etika sim psp: \S+ on [^\s:]+:(\d+)(?: \(control port (\d+)\))?"
_PLATFORM_LISTENING = r"etika platform: serving \S+ on [^\s:]+:(\d+)"


def platform_subscribed(port: int, timeout_s: float = 30.0) -> bool:
    """Whether the platform on ``port`` reports its MQTT subscription within ``timeout_s``
    (``/healthz``): before that, what terminals publish would wait at the broker."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if health.json().get("mqtt") == "subscribed":
                return True
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    return False


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)


def _pcscd_binary() -> str | None:
    return shutil.which("pcscd") or next(
        (p for p in ("/usr/sbin/pcscd",) if Path(p).exists()), None)


def pcsc_readers() -> list[str] | None:
    """pcscd's reader list, or ``None`` when no pcscd answers."""
    try:
        from smartcard import scard
    except ImportError:
        return None
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return None
    try:
        hresult, names = scard.SCardListReaders(context, [])
        return list(names) if hresult == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def card_present(reader: str) -> bool:
    from smartcard import scard

    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        return False
    try:
        hresult, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        return hresult == scard.SCARD_S_SUCCESS and bool(
            states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


class Fleet:
    """See the module docstring; ``work`` holds the profile copy, logs, ledgers, receipts."""

    def __init__(self, work: Path, profile_source: Path,
                 processes: Processes | None = None) -> None:
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.processes = processes or Processes()
        self.profile_dir = self.work / "profile"
        if not self.profile_dir.exists():
            shutil.copytree(profile_source, self.profile_dir)
        self.pop_url: str | None = None
        #: ``"MQTT"`` or ``"HTTPS"`` once :meth:`platform` ran.
        self.platform_link: str | None = None
        self.platform_port: int | None = None
        self.pki: TestPki | None = None
        # The starters may run side by side (threads); each edits the profile copy's sync.
        self._sync_lock = threading.Lock()

    def log(self, name: str) -> Path:
        (self.work / "logs").mkdir(exist_ok=True)
        return self.work / "logs" / f"{name}.log"

    def stop(self) -> None:
        """Stop every process started, by PID, last started first."""
        self.processes.stop_all()

    # --- acquirers -------------------------------------------------------------------

    def acquirers(self) -> dict[str, int]:
        """Start each PSP of the profile copy on a free port (ISO 8583 hosts and REST
        gateways) and point the copy at it; ``{name: port}``."""
        routing = self.profile_dir / "routing.toml"
        text = routing.read_text(encoding="utf-8")
        ports: dict[str, int] = {}
        moved_iso: dict[int, int] = {}
        for psp in tomllib.loads(text).get("psp", []):
            kind, name = str(psp["kind"]), str(psp["name"])
            if kind == "iso8583":
                old = int(psp["port"])
                if old not in moved_iso:
                    moved_iso[old] = self._start_psp("iso8583", name,
                                                     f"ISO 8583 acquirer {name}")
                ports[name] = moved_iso[old]
            elif kind in ("stripe", "paypal") and psp.get("url"):
                port = self._start_psp(kind, name, f"{kind} gateway {name}")
                text = text.replace(f'url = "{psp["url"]}"', f'url = "http://127.0.0.1:{port}"')
                ports[name] = port
        for old, new in moved_iso.items():
            text = re.sub(rf"^port = {old}$", f"port = {new}", text, flags=re.MULTILINE)
        routing.write_text(text, encoding="utf-8")
        return ports

    def iso8583_acquirer(self) -> tuple[int, int]:
        """One ISO 8583 acquirer with its control port (ledger summary, faults), for a
        caller that builds its own route to it; ``(port, control port)``."""
        _process, said = self.processes.start_announcing("ISO 8583 acquirer", [
            *ETIKA, "sim", "psp", "--kind", "iso8583", "--port", "0", "--control-port", "0"],
            log=self.log("psp-iso8583-control"), pattern=_PSP_LISTENING)
        if said.group(2) is None:
            raise DemoError(f"the ISO 8583 acquirer did not say its control port: "
                            f"{said.group(0)!r}")
        return int(said.group(1)), int(said.group(2))

    def _start_psp(self, kind: str, name: str, what: str) -> int:
        # Port 0: the simulator binds, then prints the port it got (no window in which
        # another process could take a port chosen for it).
        _process, said = self.processes.start_announcing(
            what, [*ETIKA, "sim", "psp", "--kind", kind, "--port", "0"],
            log=self.log(f"psp-{kind}-{name}"), pattern=_PSP_LISTENING)
        return int(said.group(1))

    # --- PIN pads, printer -------------------------------------------------------------

    def _pty(self, what: str, command: list[str]) -> str:
        process = self.processes.start(what, command)
        line = self.processes.first_line(process, what)
        match = re.search(r"/dev/pts/\d+", line)
        if match is None:
            raise DemoError(f"{what} did not start: {line!r}")
        return match.group(0)

    def pinpad(self, pin: str) -> str:
        """A serial PIN pad whose cardholder types ``pin``; its pty path."""
        return self._pty(f"PIN pad ({pin})", [*ETIKA, "sim", "pinpad", "--pin", pin])

    def printer(self, receipts: Path) -> str:
        """The ESC/POS printer, keeping each receipt as text in ``receipts``; its pty."""
        return self._pty("printer", [*ETIKA, "sim", "printer", "--out", str(receipts)])

    # --- PoP back end --------------------------------------------------------------------

    def pop(self, *, confirm_delay_ms: int = 200, key_file: str | None = None) -> str:
        """Start the PoP back end; the profile copy's ``pop_url`` points at it."""
        command = [*ETIKA, "sim", "pop", "--port", "0", "--data-dir", str(self.work / "pop"),
                   "--confirm-delay-ms", str(confirm_delay_ms)]
        if key_file:
            command += ["--key-file", key_file]
        process = self.processes.start("PoP back end", command)
        line = self.processes.first_line(process, "the PoP back end")
        found = re.search(r"https?://[0-9.]+:[0-9]+", line)
        if found is None:
            raise DemoError(f"the PoP back end printed {line!r} instead of its URL")
        self.pop_url = found.group(0)
        self._set_sync(pop_url=f'"{self.pop_url}"')
        return self.pop_url

    def register_with_pop(self, terminal_id: str, version: int, public_key_pem: bytes) -> None:
        """Give the PoP back end the terminal's signing key (a real one is provisioned)."""
        if self.pop_url is None:
            raise DemoError("the PoP back end is not started")
        answer = httpx.post(f"{self.pop_url}/v1/admin/terminals", timeout=10, json={
            "terminal_id": terminal_id, "key_version": version,
            "public_key_pem": public_key_pem.decode()})
        if answer.status_code != 200:
            raise DemoError(f"the PoP back end refused the terminal's key: {answer.text[:200]}")

    def _set_sync(self, **values: str) -> None:
        """Set ``key = value`` lines of the profile copy's ``[sync]`` (values as TOML)."""
        sync = self.profile_dir / "sync.toml"
        with self._sync_lock:
            text = sync.read_text(encoding="utf-8")
            for key, value in values.items():
                line = f"{key} = {value}"
                if re.search(rf"^{key} = .*$", text, flags=re.MULTILINE):
                    text = re.sub(rf"^{key} = .*$", line.replace("\\", "\\\\"), text,
                                  flags=re.MULTILINE)
                else:
                    text = text.rstrip("\n") + f"\n{line}\n"
            sync.write_text(text, encoding="utf-8")

    # --- cards ---------------------------------------------------------------------------

    def pcscd(self) -> bool:
        """A pcscd with vpcd's two readers: the one running, or one started here (stopped
        with the rest). False when pcscd or vpcd is not installed or does not come up."""
        found = pcsc_readers()
        binary = _pcscd_binary()
        if found is None and binary is not None and VPCD_DRIVER.exists():
            self.processes.start("pcscd", [binary, "--foreground", "--error"],
                                 log=self.log("pcscd"))
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not (
                    found and CONTACT_READER in found and CONTACTLESS_READER in found):
                time.sleep(0.1)
                found = pcsc_readers()
        return bool(found) and CONTACT_READER in (found or []) \
            and CONTACTLESS_READER in (found or [])

    def card(self, profile: str, *, contactless: bool = False,
             timeout_s: float = 20.0) -> subprocess.Popen[str]:
        """Plug the simulated card ``profile`` into vpcd (contact reader, or the
        contactless one); returns once pcscd sees it. :meth:`remove_card` pulls it out."""
        reader = CONTACTLESS_READER if contactless else CONTACT_READER
        command = [*ETIKA, "sim", "card", "--profile", profile,
                   "--port", str(VPCD_PORTS[reader])]
        if contactless:
            command.append("--contactless")
        process = self.processes.start(f"card {profile}", command, log=self.log("cards"))
        deadline = time.monotonic() + timeout_s
        while not card_present(reader):
            if process.poll() is not None:
                raise DemoError(f"the simulated card {profile} could not reach vpcd on port "
                                f"{VPCD_PORTS[reader]} (is another card plugged in there?)")
            if time.monotonic() > deadline:
                self.remove_card(process)
                raise DemoError(f"pcscd never saw the card {profile} in {reader}")
            time.sleep(0.05)
        return process

    def remove_card(self, process: subprocess.Popen[str], *, timeout_s: float = 10.0) -> None:
        """Pull a card out and wait until pcscd has seen its reader empty (a card put in
        right after would otherwise look like the same one, never re-powered)."""
        args = process.args
        contactless = isinstance(args, list) and "--contactless" in args
        reader = CONTACTLESS_READER if contactless else CONTACT_READER
        self.processes.stop(process)
        deadline = time.monotonic() + timeout_s
        while card_present(reader) and time.monotonic() < deadline:
            time.sleep(0.05)

    # --- platform and sync ---------------------------------------------------------------

    @property
    def platform_db(self) -> Path:
        """The platform's SQLite database (complete once the platform is stopped)."""
        return self.work / "platform" / "platform" / "platform.db"

    def platform(self, terminal_id: str, terminal_public_key_pem: bytes, *,
                 broker: bool | None = None) -> str:
        """The platform on SQLite, reached through Mosquitto when it is installed (or
        ``broker`` says so), HTTPS otherwise; the terminal's key registered, the profile
        copy's ``[sync]`` pointed at it. Returns ``"MQTT"`` or ``"HTTPS"``."""
        from edge_sync.pki import ensure_test_pki

        pki = self.pki = ensure_test_pki(self.work / "pki", terminal_id=terminal_id)
        data = self.work / "platform"
        key = self._etika("platform", "key", data_dir=data)
        (self.profile_dir / "platform.pem").write_text(key, encoding="utf-8")
        terminal_key = self.work / "terminal.pub.pem"
        terminal_key.write_bytes(terminal_public_key_pem)
        self._etika("platform", "register-terminal", "--terminal-id", terminal_id,
                    "--public-key", str(terminal_key), data_dir=data)
        common = [*ETIKA, "--data-dir", str(data), "platform", "serve",
                  "--http-port", "0", "--worker-id", "demo"]
        self._set_sync(ca_file=f'"{pki.ca_pem}"', cert_file=f'"{pki.terminal_pem}"',
                       key_file=f'"{pki.terminal_key}"',
                       platform_public_key='"platform.pem"', retry_base_s="0.5",
                       retry_cap_s="5.0")
        binary = mosquitto_binary() if broker is not False else None
        if broker and binary is None:
            raise DemoError("Mosquitto is not installed (scripts/setup installs it)")
        if binary is not None:
            terminal_port, platform_port = self._mosquitto(binary, pki)
            self.platform_port = self._start_platform([
                *common, "--mqtt-host", "127.0.0.1", "--mqtt-port", str(platform_port),
                "--mqtt-ca", str(pki.ca_pem), "--mqtt-cert", str(pki.platform_pem),
                "--mqtt-key", str(pki.platform_key)])
            if not platform_subscribed(self.platform_port):
                raise DemoError(f"the platform never subscribed to the broker (see "
                                f"{self.log('platform')})")
            self._set_sync(mqtt_host='"127.0.0.1"', mqtt_port=str(terminal_port),
                           mqtt_tls="true", https_url=f'"http://127.0.0.1:{self.platform_port}"')
            self.platform_link = "MQTT"
        else:
            self.platform_port = self._start_platform([
                *common, "--no-mqtt", "--https-cert", str(pki.broker_pem),
                "--https-key", str(pki.broker_key)])
            self._set_sync(https_url=f'"https://127.0.0.1:{self.platform_port}"')
            self.platform_link = "HTTPS"
        return self.platform_link

    def _start_platform(self, command: list[str]) -> int:
        """``etika platform serve --http-port 0``: it binds, then prints the port it got."""
        process, said = self.processes.start_announcing(
            "platform", command, log=self.log("platform"), pattern=_PLATFORM_LISTENING)
        port = int(said.group(1))
        wait_for_port(port, process, "the platform")
        return port

    def _mosquitto(self, binary: str, pki: TestPki) -> tuple[int, int]:
        """Mosquitto from the shipped configuration and ACLs on two free loopback ports
        (fresh ones when another process took them first)."""
        _process, terminal_port, platform_port = start_mosquitto(
            self.processes, binary, self.work / "mosquitto", pki, log=self.log("mosquitto"))
        return terminal_port, platform_port

    def sync(self, data_dir: Path) -> subprocess.Popen[str]:
        """The terminal's outbox worker for ``data_dir``: to the platform, the PSPs and the
        PoP back end, until stopped."""
        return self.processes.start("sync", [
            *ETIKA, "--profile", str(self.profile_dir), "--data-dir", str(data_dir),
            "sync", "run"], log=self.log("sync"))

    def _etika(self, *args: str, data_dir: Path) -> str:
        result = subprocess.run([*ETIKA, "--data-dir", str(data_dir), *args],
                                capture_output=True, text=True, env=etika_env(), timeout=120,
                                check=False)
        if result.returncode != 0:
            raise DemoError(f"etika {' '.join(args[:2])}: {result.stderr.strip()[-300:]}")
        return result.stdout
