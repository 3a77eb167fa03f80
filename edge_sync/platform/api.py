"""The platform's HTTP API: the HTTPS uplink fallback and the fleet/reconciliation views.

=======  ===================================  =================================================
POST     ``/v1/terminals/{id}/messages``      ``{"messages": [envelope…]}`` → ``{"acks": […]}``,
                                              answered after the commit (503 if the database
                                              fails: nothing was stored, send again)
GET      ``/v1/terminals``                    every registered terminal: last seen, reported
                                              backlog, message and rejection counts, journal
                                              stretches no checkpoint covers yet
GET      ``/v1/terminals/{id}``               one terminal, its messages per kind and totals
GET      ``/v1/terminals/{id}/messages``      its latest envelopes (``?kind=alert&limit=``)
GET      ``/v1/terminals/{id}/transactions``  its payments and refunds as mirrored: latest
                                             state, fraud check, PSP attempts (``?limit=``)
GET      ``/v1/fleet``                        fleet summary: terminals, backlog, totals
GET      ``/v1/totals?date=&terminal_id=``    the platform's transaction totals
GET      ``/v1/rejections?terminal_id=``      the latest refused uplinks and why, newest first
GET      ``/v1/reconciliation?date=``         end-of-day reports against the platform's sums
GET      ``/healthz``                         liveness, and whether the MQTT consumer is up
GET      ``/metrics``                         Prometheus (:mod:`edge_sync.platform.metrics`)
=======  ===================================  =================================================

Handlers are plain ``def``: FastAPI runs them in its thread pool, which is where blocking
database calls belong.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edge_sync.json_types import JsonObject
from edge_sync.messages import AckBatch, messages_path
from edge_sync.platform.errors import StorageError
from edge_sync.platform.ingest import Ingestor, RawUplink
from edge_sync.platform.metrics import platform_registry
from edge_sync.platform.reconcile import reconcile
from edge_sync.platform.records import Total
from edge_sync.platform.storage import PlatformStorage

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "create_app"]

log = logging.getLogger("etika.platform.api")

#: Most messages one HTTPS request may carry (the contract's ``MessageBatch`` bound).
MAX_BATCH = 1000
#: Largest request body read: a full batch of ordinary envelopes is far below this.
MAX_BODY_BYTES = 16 * 1024 * 1024


async def _read_capped(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _totals_json(totals: list[Total]) -> list[dict[str, Any]]:
    return [
        {
            "terminal_id": t.terminal_id,
            "business_date": t.business_date,
            "currency": t.currency,
            "count": t.count,
            "amount_minor": t.amount_minor,
        }
        for t in totals
    ]


def _by_currency(totals: list[Total]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for t in totals:
        line = out.setdefault(t.currency, {"count": 0, "amount_minor": 0})
        line["count"] += t.count
        line["amount_minor"] += t.amount_minor
    return out


def create_app(
    storage: PlatformStorage,
    ingestor: Ingestor | None = None,
    health: Callable[[], JsonObject] | None = None,
    registry: CollectorRegistry | None = None,
    operator_token: str | None = None,
) -> FastAPI:
    """The FastAPI application over one storage (the ingestor defaults to one over it).

    With ``operator_token``, the fleet views, reconciliation and metrics want
    ``Authorization: Bearer <token>``; the uplink endpoint never does (each message is
    signed by its terminal) and neither does ``/healthz``. Without it they are open: bind
    the worker to loopback or put it behind the operator's gateway.
    """
    if operator_token is not None and len(operator_token) < 16:
        raise ValueError("the operator token must be at least 16 characters")
    ingest = ingestor or Ingestor(storage)
    metrics = registry or platform_registry(ingest)
    app = FastAPI(title="Étika platform", version="1")

    if operator_token is not None:
        expected = f"Bearer {operator_token}".encode()

        @app.middleware("http")
        async def _operators_only(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            path = request.url.path
            open_path = path == "/healthz" or (
                request.method == "POST" and path.endswith("/messages")
            )
            given = request.headers.get("authorization", "").encode()
            if not open_path and not hmac.compare_digest(given, expected):
                return JSONResponse(
                    status_code=401,
                    content={"detail": "operator token required (Authorization: Bearer …)"},
                    headers={"WWW-Authenticate": "Bearer"},
                )
            return await call_next(request)

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(StorageError)
    async def _storage_down(_request: Request, exc: StorageError) -> JSONResponse:
        # The database's own words (host, schema, SQL) are for the operator's log, never
        # for whoever sent the request.
        log.warning("platform database unavailable: %s", exc)
        return JSONResponse(
            status_code=503,
            content={"detail": "platform database unavailable; retry later"},
            headers={"Retry-After": "5"},
        )

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", **(health() if health else {})}

    @app.post("/v1/terminals/{terminal_id}/messages")
    async def post_messages(terminal_id: str, request: Request) -> JSONResponse:
        try:
            messages_path(terminal_id)
        except ValueError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from exc
        body = await _read_capped(request)
        try:
            document = json.loads(body)
        except ValueError as exc:  # not JSON, not UTF-8, an integer past the digit limit
            raise HTTPException(400, detail=f"body is not JSON: {exc}") from exc
        except RecursionError as exc:
            raise HTTPException(400, detail="body is nested too deep") from exc
        messages = document.get("messages") if isinstance(document, dict) else None
        if not isinstance(messages, list):
            raise HTTPException(400, detail='body must be {"messages": [envelope, ...]}')
        if len(messages) > MAX_BATCH:
            raise HTTPException(413, detail=f"at most {MAX_BATCH} messages per request")
        # Each message on its own: a malformed one is rejected, its neighbours are not.
        raws = [
            RawUplink(
                terminal_id,
                item if isinstance(item, dict) else json.dumps(item).encode(),
            )
            for item in messages
        ]
        acks = await run_in_threadpool(ingest.ingest, raws)
        # A held message gets no ack: the contract's "unknown, send again later".
        return JSONResponse(AckBatch(acks=[a for a in acks if a is not None]).wire())

    @app.get("/v1/terminals")
    def terminals() -> dict[str, Any]:
        return {"terminals": [t.as_json() for t in storage.terminals()]}

    @app.get("/v1/terminals/{terminal_id}")
    def terminal(terminal_id: str, date: str | None = Query(default=None)) -> dict[str, Any]:
        summary = storage.terminal(terminal_id)
        if summary is None:
            raise HTTPException(404, detail=f"no terminal {terminal_id} is registered")
        totals = storage.transaction_totals(_date(date), terminal_id)
        return {
            **summary.as_json(),
            "messages_by_kind": storage.kind_counts(terminal_id),
            "totals": _totals_json(totals),
        }

    @app.get("/v1/terminals/{terminal_id}/messages")
    def terminal_messages(
        terminal_id: str,
        kind: str | None = Query(default=None),
        limit: int = Query(default=50, ge=1, le=1000),
    ) -> dict[str, Any]:
        if storage.terminal(terminal_id) is None:
            raise HTTPException(404, detail=f"no terminal {terminal_id} is registered")
        return {"messages": storage.messages(terminal_id, kind, limit)}

    @app.get("/v1/terminals/{terminal_id}/transactions")
    def terminal_transactions(
        terminal_id: str, limit: int = Query(default=100, ge=1, le=1000)
    ) -> dict[str, Any]:
        if storage.terminal(terminal_id) is None:
            raise HTTPException(404, detail=f"no terminal {terminal_id} is registered")
        return {"transactions": storage.transactions(terminal_id, limit)}

    @app.get("/v1/fleet")
    def fleet(date: str | None = Query(default=None)) -> dict[str, Any]:
        summaries = storage.terminals()
        totals = storage.transaction_totals(_date(date))
        return {
            "terminals": len(summaries),
            "seen": sum(1 for s in summaries if s.last_seen_at is not None),
            "backlog_total": sum(s.as_json()["backlog_total"] for s in summaries),
            "messages": sum(s.messages for s in summaries),
            "rejected": sum(s.rejected for s in summaries),
            "unbooked": sum(s.unbooked for s in summaries),
            "checkpoint_gaps": sum(len(s.checkpoint_gaps) for s in summaries),
            "business_date": date,
            "totals_by_currency": _by_currency(totals),
        }

    @app.get("/v1/totals")
    def totals(
        date: str | None = Query(default=None), terminal_id: str | None = Query(default=None)
    ) -> dict[str, Any]:
        return {"totals": _totals_json(storage.transaction_totals(_date(date), terminal_id))}

    @app.get("/v1/rejections")
    def rejections(
        terminal_id: str | None = Query(default=None),
        limit: int = Query(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        return {
            "rejections": [
                {
                    "terminal_id": r.terminal_id,
                    "message_id": r.message_id,
                    "reason": r.reason,
                    "held": r.held,
                    "received_at": r.received_at,
                }
                for r in storage.rejections(terminal_id, limit)
            ]
        }

    @app.get("/v1/reconciliation")
    def reconciliation(date: str = Query(...)) -> dict[str, Any]:
        return reconcile(storage, _date(date) or date).as_json()

    return app


def _date(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value).isoformat()
    except ValueError as exc:
        raise HTTPException(422, detail=f"date must be YYYY-MM-DD, not {value!r}") from exc
