"""The router's FastAPI app and how it answers failures: every error in the OpenAI error shape, a model deployment
that is starting, dead or over its queue a 503 with `Retry-After`, and nothing a handler missed as plain text.

Serve's proxy puts an `x-request-id` header on every response (the client's own, else a new one); a server-side
failure is logged with it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from types import MethodType

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.context import _get_serve_request_context
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError
from starlette.exceptions import HTTPException

from parallel_r1.serve.schema import APIError, ChatRequest

api = FastAPI(title="parallel-r1 ensemble router", docs_url=None, redoc_url=None)
log = logging.getLogger(__name__)

REQUEST_ID = "x-request-id"
RETRY_AFTER_S = 1  # what a 503 asks the client to wait before retrying
# the model deployment cannot take the request now (starting, its replica died, its queue is full): retry later
UNAVAILABLE = (BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError, RayActorError,
               ActorUnavailableError)


def _openapi(app: FastAPI) -> dict:
    """FastAPI's schema of the app's routes, with the chat request's body (the router parses the raw body itself, to
    answer every problem in the OpenAI error shape, so FastAPI does not see it). Bound to the app it describes: a Serve
    replica runs an unpickled copy of it, not this module's `api`, which holds no routes there."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version="1", routes=app.routes)
        body = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update({**body.pop("$defs", {}), "ChatRequest": body})
        schema["paths"]["/v1/chat/completions"]["post"]["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}}}
        app.openapi_schema = schema
    return app.openapi_schema


api.openapi = MethodType(_openapi, api)


@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Unknown routes and methods answer in the OpenAI error shape too."""
    return error_response(APIError(exc.status_code, str(exc.detail), code="not_found"))


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A parameter FastAPI itself validates: a 400 in the OpenAI error shape (not FastAPI's 422)."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(APIError(400, f"{where}: {first.get('msg', 'invalid')}", param=where or None,
                                   code="invalid_value"))


class LastResort:
    """ASGI middleware: a failure no handler caught before the response began is logged with the request id and
    answered in the OpenAI error shape. Plain ASGI: Starlette's `@app.middleware` would pass every request and every
    streamed chunk through one more task and memory stream."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = False

        async def tracked(message: dict) -> None:
            nonlocal began
            began = began or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as e:  # noqa: BLE001 - the last line of defence
            if began:  # too late for another answer: the server ends the response
                raise
            rid = request_id(Request(scope))
            log.exception("request %s failed", rid)
            answer = error_response(APIError(500, f"internal error ({type(e).__name__}); request id {rid}",
                                             code="internal_error", kind="server_error"))
            await answer(scope, receive, send)


api.add_middleware(LastResort)


def request_id(request: Request) -> str:
    """The id Serve's proxy gave this request (the client's `x-request-id`, else a new one)."""
    return request.headers.get(REQUEST_ID) or _get_serve_request_context().request_id


def error_response(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def unavailable(why: str) -> APIError:
    """A 503 the client should retry after `Retry-After` seconds."""
    return APIError(503, f"the model is not available right now ({why}); retry shortly", code="model_unavailable",
                    kind="server_error", headers={"Retry-After": str(RETRY_AFTER_S)})


class NotReady(Exception):
    """The model deployment did not answer /ready: it is starting or unavailable (`error` None), or its last try to
    answer failed with `error` (an engine that could not start, say)."""

    def __init__(self, error: str | None) -> None:
        super().__init__(error or "starting or unavailable")
        self.error = error

    def response(self, detail: bool) -> JSONResponse:
        """The 503 to retry; `detail`: the error too (for an authorized caller)."""
        body = {"status": "not ready", **({"error": self.error} if detail and self.error else {})}
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


class FirstAnswer:
    """Whether the model deployment has answered yet: until it has, a request waits `probe_s` for its first answer
    and is then a 503 to retry, not a request that waits out its timeout behind a replica loading its model. The
    probe runs on when a request stops waiting, so a slow first call still ends the wait for the next requests."""

    def __init__(self, ask, probe_s: float = 2.0) -> None:
        self._ask, self.probe_s = ask, probe_s  # `ask`: an async call the model deployment answers (its models)
        self._probe: asyncio.Future | None = None
        self.up = False
        self.failure: Exception | None = None  # how the last question that ended failed (None: it was answered)
        self._logged: str | None = None  # the not-ready reason logged last (None: ready, or never asked)

    def _ended(self, probe: asyncio.Future) -> None:
        if not probe.cancelled():
            self.failure = probe.exception()

    async def _answered(self, fresh: bool) -> None:
        """Await the deployment's answer for at most `probe_s`: the question in flight, or a new one after a failed
        one (or after any finished one, when `fresh`); raises when it did not answer."""
        if self._probe is None or (self._probe.done() and (fresh or self._probe.exception() is not None)):
            self._probe = asyncio.ensure_future(self._ask())
            self._probe.add_done_callback(self._ended)
        await asyncio.wait_for(asyncio.shield(self._probe), self.probe_s)
        self.up = True

    async def check(self) -> None:
        """Ask whether the deployment answers now (what /ready does), bounded by `probe_s` and not by a request's
        timeout; raises `NotReady` when it does not. Logs a change of the answer, not every poll's."""
        try:
            await self._answered(fresh=True)
        except Exception as e:  # noqa: BLE001 - whatever the handle raises answers "ready?"
            if isinstance(e, TimeoutError) and self.failure is not None:  # asked again: the last try failed
                e = self.failure
            not_ready = NotReady(None if isinstance(e, (TimeoutError, *UNAVAILABLE)) else f"{type(e).__name__}: {e}")
            if str(not_ready) != self._logged:
                self._logged = str(not_ready)
                log.warning("not ready: the model deployment did not answer (%s)", not_ready)
            raise not_ready from e
        if self._logged is not None:
            self._logged = None
            log.info("ready: the model deployment answers")

    async def wait(self) -> None:
        if self.up:
            return
        try:
            await self._answered(fresh=False)
        except Exception as e:  # not up yet, whatever the handle raises
            log.warning("the model deployment is not up yet (%s)", type(e).__name__)
            raise unavailable("the model deployment is starting") from None


def backend_failure(e: Exception, request_id: str = "") -> APIError:
    """A failed replica, engine or remote endpoint, in the OpenAI error shape: a 503 to retry when the model
    deployment cannot take requests now, the remote backend's own `APIError` as it is, else a logged 500 that names
    the request id (the exception's text stays in the log)."""
    if isinstance(e, APIError):
        return e
    if isinstance(e, UNAVAILABLE):
        log.warning("request %s: model deployment unavailable (%s: %s)", request_id, type(e).__name__, e)
        return unavailable(type(e).__name__)
    log.error("request %s: the model backend failed", request_id, exc_info=e)
    return APIError(500, f"the model backend failed ({type(e).__name__}); request id {request_id}",
                    code="backend_error", kind="server_error")


def is_context_refusal(message: str) -> bool:
    """Whether the model backend's refusal says the prompt is over the model's context length."""
    return "context length" in message


def refusal(message: str) -> APIError:
    """The model backend refused the request (a prompt over the context length, ...): a 400."""
    code = "context_length_exceeded" if is_context_refusal(message) else "invalid_request"
    return APIError(400, message, param="messages", code=code)


def timed_out(after_s: float) -> APIError:
    return APIError(504, f"the model did not answer within serve.request_timeout_s ({after_s:g} s); its generation "
                         "was stopped", code="timeout", kind="server_error")


def event(obj: dict) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(obj)}\n\n"
