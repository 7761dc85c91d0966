"""The router: the one `@serve.ingress` FastAPI deployment of the app, speaking the OpenAI chat API.

Per request it validates the body (every bad input is a 4xx with an OpenAI-style error), takes the student
profile from the request or infers it from the student's messages, picks the specialist (`routing.Router`),
asks the model backend, and answers with the specialist named in the `x-parallel-r1-specialist` header and
the `specialist` field. A share of replies is graded after the response is sent (`online_grading`).
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from parallel_r1.config import ServeConfig
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.inference.engine import SamplingParams
from parallel_r1.serving.hf_backend import Generation
from parallel_r1.serving.online_grading import OnlineGrader
from parallel_r1.serving.profile_inference import infer_profile
from parallel_r1.serving.routing import Route, Router
from parallel_r1.serving.schema import (
    SPECIALIST_HEADER,
    APIError,
    ChatRequest,
    chunk_body,
    completion_body,
    completion_id,
    parse_request,
    requested_profile,
    stream_pieces,
    with_system_prompt,
)

api = FastAPI(title="parallel-r1 ensemble router", docs_url=None, redoc_url=None)


@api.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Unknown routes and methods answer in the OpenAI error shape too."""
    return JSONResponse(APIError(exc.status_code, str(exc.detail), code="not_found").body(), exc.status_code)


def _error(err: APIError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


def _refusal(message: str) -> APIError:
    """The model backend refused the request (a prompt over the context length, ...): a 400."""
    code = "context_length_exceeded" if "context length" in message else "invalid_request"
    return APIError(400, message, param="messages", code=code)


@serve.deployment(name="Router")
@serve.ingress(api)
class ChatRouter:
    """Routes OpenAI chat requests to specialists. `backend_handle`: the model deployment (wrapped in an `HFClient`
    or `LLMClient` by `backend_kind`); `system_prompts`: specialist -> the system prompt it was trained with."""

    def __init__(self, backend_handle, backend_kind: str, cfg: dict, routing_table: dict | None,
                 system_prompts: dict[str, str], score_log: str, adapters: list[str]) -> None:
        from parallel_r1.serving.app import backend_client

        self.cfg = ServeConfig(**cfg)
        self.backend = backend_client(backend_kind, backend_handle, adapters)
        self.system_prompts = system_prompts
        self.routing_table = routing_table
        self.grader = OnlineGrader(self.cfg.grading_fraction, score_log)
        self.token = os.environ.get(self.cfg.auth_token_env, "") if self.cfg.auth_token_env else ""
        self._router: Router | None = None

    async def _routes(self) -> Router:
        if self._router is None:  # the model list comes from the backend, once it is up
            self._router = Router(await self.backend.models(), self.routing_table, self.cfg.static_routes)
        return self._router

    def _check_auth(self, request: Request) -> None:
        if not self.cfg.auth_token_env:
            return
        sent = request.headers.get("authorization", "")
        if not self.token or not hmac.compare_digest(sent, f"Bearer {self.token}"):
            raise APIError(401, "missing or invalid bearer token (Authorization: Bearer <token>)",
                           code="invalid_api_key", kind="authentication_error")

    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok"}

    @api.get("/ready")
    async def ready(self) -> JSONResponse:
        try:
            router = await self._routes()
        except Exception as e:  # the backend is not up (yet): not ready, which is not a client error
            return JSONResponse({"status": "not ready", "reason": f"{type(e).__name__}: {e}"}, status_code=503)
        return JSONResponse({"status": "ready", "models": sorted(router.available)})

    @api.get("/v1/models")
    async def list_models(self, request: Request) -> JSONResponse:
        try:
            self._check_auth(request)
        except APIError as e:
            return _error(e)
        router = await self._routes()
        ids = [self.cfg.router_model, *sorted(router.available)]
        return JSONResponse({"object": "list", "data": [
            {"id": i, "object": "model", "created": 0, "owned_by": "parallel-r1"} for i in ids]})

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        started = time.perf_counter()
        try:
            self._check_auth(request)
            chat = parse_request(await request.body(), self.cfg)
            profile, profile_source = requested_profile(chat)
            if profile is None:
                profile, profile_source = infer_profile(chat.student_turns()).profile, "inferred"
            route = await self._pick(chat, profile)
        except APIError as e:
            return _error(e)
        conversation = self._conversation(chat, route.specialist)
        try:
            result = await self.backend.generate(conversation, self._sampling(chat), route.specialist)
        except Exception as e:  # a failed replica or engine: the server's fault, still in the OpenAI error shape
            return _error(APIError(500, f"the model backend failed: {type(e).__name__}: {e}", code="backend_error",
                                   kind="server_error"))
        if result.error:
            return _error(_refusal(result.error))
        extra = {"specialist": route.specialist, "route_source": route.source,
                 "student_profile": {"kind": profile.kind, "traits": profile.traits, "source": profile_source}}
        cid = completion_id()
        task = None
        if self.grader.should_grade():
            task = BackgroundTask(self.grader.grade, request_id=cid, history=conversation, reply=result.texts[0],
                                  specialist=route.specialist, profile=profile, profile_source=profile_source,
                                  route_source=route.source, latency_s=time.perf_counter() - started)
        headers = {SPECIALIST_HEADER: route.specialist}
        if chat.stream:
            return StreamingResponse(self._stream(cid, chat, result, extra), media_type="text/event-stream",
                                     headers=headers, background=task)
        body = completion_body(cid, chat.model, result.texts, result.finish_reasons, result.prompt_tokens,
                               result.completion_tokens, extra)
        return JSONResponse(body, headers=headers, background=task)

    async def _pick(self, chat: ChatRequest, profile: StudentProfileConfig) -> Route:
        router = await self._routes()
        if chat.model == self.cfg.router_model:
            return router.route(profile.kind)
        if chat.model in router.available:
            return Route(chat.model, "request.model")
        known = ", ".join([self.cfg.router_model, *sorted(router.available)])
        raise APIError(404, f"model {chat.model!r} does not exist; available models: {known}", param="model",
                       code="model_not_found")

    def _conversation(self, chat: ChatRequest, specialist: str) -> list[dict]:
        if not self.cfg.add_system_prompt:
            return chat.conversation()
        return with_system_prompt(chat.conversation(), self.system_prompts.get(specialist,
                                                                                self.system_prompts.get("", "")))

    def _sampling(self, chat: ChatRequest) -> SamplingParams:
        return SamplingParams(
            n=chat.n, seed=chat.seed,
            temperature=self.cfg.temperature if chat.temperature is None else chat.temperature,
            top_p=self.cfg.top_p if chat.top_p is None else chat.top_p,
            max_tokens=chat.max_completion_tokens or chat.max_tokens or self.cfg.max_tokens)

    @staticmethod
    async def _stream(cid: str, chat: ChatRequest, result: Generation, extra: dict) -> AsyncIterator[str]:
        def event(obj: dict) -> str:
            return f"data: {json.dumps(obj)}\n\n"

        for i, (text, reason) in enumerate(zip(result.texts, result.finish_reasons, strict=True)):
            yield event(chunk_body(cid, chat.model, i, {"role": "assistant", "content": ""}, None, extra))
            for piece in stream_pieces(text):
                yield event(chunk_body(cid, chat.model, i, {"content": piece}, None, extra))
            yield event(chunk_body(cid, chat.model, i, {}, reason, extra))
        yield "data: [DONE]\n\n"
