"""The one logged-in PKCS#11 session of the process, and how every call reaches it.

Facts measured on this machine (SoftHSM 2.6.1, python-pkcs11 0.10.1, 2 cores):

* python-pkcs11 calls ``C_Initialize(NULL)``: no locking callbacks, no
  ``CKF_OS_LOCKING_OK``. PKCS#11 §5.4 then makes the *application* responsible for never
  entering the module from two threads at once, and SoftHSM 2.6.1 does segfault when two
  threads sign at the same time.
* Login is per token, not per session: a second ``C_Login`` raises
  ``UserAlreadyLoggedIn``; it costs ~1.5 ms, so it happens once, when the owner opens.
* A bare HMAC-SHA256 ``C_Sign`` costs ~11 µs; handing each call to a dedicated worker
  thread and waiting for its result costs ~65 µs more (13 k/s instead of 89 k/s), while
  taking an uncontended lock costs ~0.5 µs (85 k/s).

So every PKCS#11 call of the process, for every owner and every module, runs while holding
the one process-wide :data:`PKCS11_LOCK`: calls are strictly serialised, exactly as a single
worker thread would serialise them, without paying a thread hand-off per call. Sessions are
not bound to the thread that opened them (PKCS#11 §5.6 only forbids concurrent use), so
whichever thread holds the lock may use the session. Asyncio callers go through
:meth:`SessionOwner.arun`, which runs the call on one dedicated ``hsm-worker`` thread so
the event loop never blocks on the token (DESIGN §7.7: one clear boundary).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pkcs11
import pkcs11.exceptions as p11
from pkcs11._pkcs11 import lib as Pkcs11Module

from hsm.config import HsmSettings, ensure_softhsm_conf
from hsm.errors import (
    HsmError,
    KeyStoreClosedError,
    ModuleMissingError,
    TokenMissingError,
    map_pkcs11_error,
)

__all__ = ["PKCS11_LOCK", "SessionOwner", "find_token", "load_module", "run_in_worker"]

T = TypeVar("T")

#: Held around every PKCS#11 call of the process (see the module docstring).
PKCS11_LOCK = threading.RLock()

_modules: dict[str, Pkcs11Module] = {}
# Logged-in sessions per (module, token serial): login is per token, so only the first
# session of a token logs in, and the token stays logged in while any session is open.
_open_sessions: dict[tuple[str, bytes], int] = {}
_executor: ThreadPoolExecutor | None = None


def load_module(module: str) -> Pkcs11Module:
    """The loaded, initialised PKCS#11 module at ``module`` (once per process)."""
    with PKCS11_LOCK:
        lib = _modules.get(module)
        if lib is None:
            try:
                lib = pkcs11.lib(module)
            except p11.PKCS11Error as exc:
                raise ModuleMissingError(module, str(exc) or type(exc).__name__) from exc
            _modules[module] = lib
        return lib


def _worker() -> ThreadPoolExecutor:
    global _executor
    with PKCS11_LOCK:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hsm-worker")
        return _executor


async def run_in_worker(call: Callable[[], T]) -> T:
    """Await ``call()`` run on the process's one ``hsm-worker`` thread."""
    return await asyncio.get_running_loop().run_in_executor(_worker(), call)


def find_token(settings: HsmSettings) -> pkcs11.Token:
    """The token labelled ``settings.token_label``; :class:`TokenMissingError` if absent."""
    if settings.module in _modules:
        lib = _modules[settings.module]
    else:
        # SoftHSM2 reads SOFTHSM2_CONF once, in C_Initialize: only the first load needs it,
        # and a load that fails leaves the environment as it found it.
        before = os.environ.get("SOFTHSM2_CONF")
        ensure_softhsm_conf(settings.data_dir)
        try:
            lib = load_module(settings.module)
        except ModuleMissingError:
            if before is None:
                os.environ.pop("SOFTHSM2_CONF", None)
            raise
    with PKCS11_LOCK:
        try:
            return lib.get_token(token_label=settings.token_label)
        except (p11.NoSuchToken, p11.TokenNotPresent) as exc:
            raise TokenMissingError(settings.token_label) from exc
        except p11.PKCS11Error as exc:
            raise map_pkcs11_error(
                exc, where="looking for the token", label=settings.token_label
            ) from exc


class SessionOwner:
    """Owns one read-write, logged-in session on the terminal's token.

    Use :meth:`run` (any thread) or :meth:`arun` (asyncio); both hold :data:`PKCS11_LOCK`
    for the whole call and map python-pkcs11's exceptions to :mod:`hsm.errors`. After
    :meth:`close` the owner refuses further calls.
    """

    def __init__(self, settings: HsmSettings, token: pkcs11.Token, session: pkcs11.Session,
                 key: tuple[str, bytes]) -> None:
        self.settings = settings
        self.token = token
        self._session: pkcs11.Session | None = session
        self._key = key

    @classmethod
    def open(cls, settings: HsmSettings) -> SessionOwner:
        token = find_token(settings)
        key = (settings.module, bytes(token.serial))
        with PKCS11_LOCK:
            first = _open_sessions.get(key, 0) == 0
            pin = settings.pin() if first else None
            try:
                session = token.open(rw=True, user_pin=pin)
            except p11.PKCS11Error as exc:
                raise map_pkcs11_error(
                    exc, where="logging in to the token", label=settings.token_label
                ) from exc
            _open_sessions[key] = _open_sessions.get(key, 0) + 1
        return cls(settings, token, session, key)

    @property
    def closed(self) -> bool:
        return self._session is None

    def run(
        self,
        fn: Callable[[pkcs11.Session], T],
        *,
        where: str,
        key_label: str | None = None,
        opening_vault: bool = False,
    ) -> T:
        """``fn(session)`` under the PKCS#11 lock, its errors mapped; ``where`` names the job."""
        with PKCS11_LOCK:
            session = self._session
            if session is None:
                raise KeyStoreClosedError(
                    f"the key store session was closed; open a new one (while {where})"
                )
            try:
                return fn(session)
            except HsmError:
                raise
            except p11.PKCS11Error as exc:
                raise map_pkcs11_error(
                    exc,
                    where=where,
                    label=self.settings.token_label,
                    key_label=key_label,
                    opening_vault=opening_vault,
                ) from exc

    async def arun(
        self,
        fn: Callable[[pkcs11.Session], T],
        *,
        where: str,
        key_label: str | None = None,
        opening_vault: bool = False,
    ) -> T:
        """:meth:`run` on the ``hsm-worker`` thread, awaited without blocking the loop."""
        call = functools.partial(
            self.run, fn, where=where, key_label=key_label, opening_vault=opening_vault
        )
        return await run_in_worker(call)

    def close(self) -> None:
        """Close the session (idempotent); the last session of a token logs it out."""
        with PKCS11_LOCK:
            session, self._session = self._session, None
            if session is None:
                return
            _open_sessions[self._key] -= 1
            try:
                session.close()
            except p11.PKCS11Error:
                # Closing a session the module already dropped (token removed) is not an
                # error the caller can act on; the session is gone either way.
                pass

    def __enter__(self) -> SessionOwner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<SessionOwner {self.settings.token_label!r} {state}>"
