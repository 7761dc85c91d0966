"""The router: the one `@serve.ingress` FastAPI deployment of the app, speaking the OpenAI chat API.

Per request it validates the body (every bad input is a 4xx with an OpenAI-style error), takes the student
profile from the request or reads it from the conversation with the `serve.profile_reader` reader (cues,
embedding, or the LLM at the `grade.judge` endpoint; loaded once per replica), picks the specialist (`routing.Router`),
asks what serves its promoted version (the model backend for adapters and full models, the OpenAI-compatible
endpoint for OpenAI fine-tuned ids) with the request's sampling or else the `ParallelExecutionPolicy` defaults, and
answers with the specialist named in the `x-parallel-r1-specialist` header and the `specialist` field, its version in
`x-parallel-r1-version` and `version`. `stream=true` passes the tokens on as OpenAI SSE chunks while they are
generated. A model answering in the Parallel-R1 format is answered with the student view (`parallel_view`). A share
of replies is graded after the response is sent (`online_grading`). The bearer token is read from the replica's own
environment.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from ray import serve
from starlette.background import BackgroundTask

from parallel_r1.config import GradeConfig, MonitorConfig, OpenAIEndpointConfig, PipelineConfig, ServeConfig
from parallel_r1.data.profiles import StudentProfileConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.grade import build_grader
from parallel_r1.inference.policy import ParallelExecutionPolicy
from parallel_r1.profiles import aread_profile
from parallel_r1.profiles.reader import embedding_reader
from parallel_r1.scoreboard.board import collect
from parallel_r1.scoreboard.page import render
from parallel_r1.serve.api import (
    FirstAnswer,
    NotReady,
    api,
    backend_failure,
    error_response,
    event,
    refusal,
    request_id,
    timed_out,
)
from parallel_r1.serve.generation import Delta, Generation, backend_client
from parallel_r1.serve.grounding import Grounded, ReplyGrounding
from parallel_r1.serve.metrics import RouterMetrics
from parallel_r1.serve.online_grading import OnlineGrader
from parallel_r1.serve.openai_backend import OpenAIRemote
from parallel_r1.serve.parallel_view import student_generation, student_stream
from parallel_r1.serve.routing import Route, Router
from parallel_r1.serve.schema import (
    SPECIALIST_HEADER,
    VERSION_HEADER,
    APIError,
    ChatRequest,
    chunk_body,
    completion_body,
    completion_id,
    parse_request,
    request_sampling,
    requested_profile,
    usage_body,
    with_instruction,
    with_system_prompt,
)
from parallel_r1.serve.served import ServedSet, Target, files_stamp, read_served

log = logging.getLogger(__name__)


@serve.deployment(name="Router")
@serve.ingress(api)
class ChatRouter:
    """Routes OpenAI chat requests to specialists. `backend_handle`: the model deployment (wrapped in an `HFClient`
    or `LLMClient` by `backend_kind`); `policy`: the `ParallelExecutionPolicy` whose sampling requests default to;
    `workdir`: the run directory whose promoted versions and routing table are served (re-read when they change;
    OpenAI fine-tuned versions are asked of `serve.openai_base_url`);
    `system_prompts`: specialist -> the system prompt it was trained with (the policy's parallel-thinking
    instruction is added for a model answering in that format); `grade`: the grade section (its fitted grader's
    folder made absolute): the online grader it names, and the `grade.judge` endpoint the "llm" profile reader asks
    (without it, the rubric grades and that reader falls back to the embedding reader); `monitor`: the thresholds
    the /dashboard scoreboard draws; `specials`: the base model's special-token strings (for the vllm backend);
    `kb`: the kb section when replies are grounded in the knowledge base (`ReplyGrounding`)."""

    def __init__(self, backend_handle, backend_kind: str, cfg: dict, policy: dict, workdir: str,
                 system_prompts: dict[str, str], score_log: str, grade: dict | None = None,
                 monitor: dict | None = None, specials: list[str] | None = None, kb: dict | None = None) -> None:
        self.cfg = ServeConfig(**cfg)
        self.board_cfg = PipelineConfig(workdir=workdir, serve=self.cfg, monitor=MonitorConfig(**(monitor or {})))
        self.metrics = RouterMetrics()
        grade_cfg = GradeConfig(**grade) if grade is not None else None
        self._profile_llm = self._profile_reader(grade_cfg.judge.model_dump() if grade_cfg else None)
        self.policy = ParallelExecutionPolicy(**policy)
        self.backend = backend_client(backend_kind, backend_handle, self.cfg.grpc_handles, specials or [])
        self.remote = OpenAIRemote(self.cfg) if self.cfg.openai_base_url else None
        self.system_prompts = system_prompts
        self.workdir = workdir
        self.grounding = ReplyGrounding(kb, workdir)
        self._served = read_served(workdir, self.cfg)
        self._router = self._make_router(self._served)
        self._checked = time.monotonic()
        self.grader = OnlineGrader(self.cfg.grading_fraction, score_log, log_conversations=self.cfg.log_conversations,
                                   profile_reader=self.cfg.profile_reader,
                                   grader=build_grader(grade_cfg) if grade_cfg is not None else None,
                                   on_graded=self.metrics.graded)
        self.token = self._read_token()
        self.first_answer = FirstAnswer(lambda: self.backend.models())

    def _profile_reader(self, judge: dict | None):
        """Load the profile reader once per replica: the embedding model and classifier now (not on the first
        request); for "llm", the reader of the judge's endpoint (its client is made in the replica's loop)."""
        method = self.cfg.profile_reader
        if method == "llm" and judge is None:
            log.warning("serve.profile_reader is 'llm' but the router got no grade.judge endpoint: reading profiles "
                        "with the embedding reader")
        if method != "cues":
            embedding_reader().warm()  # also the llm reader's fallback
        if method == "llm" and judge is not None:
            from parallel_r1.profiles.llm import LLMProfileReader

            return LLMProfileReader(OpenAIEndpointConfig(**judge))
        return None

    async def _infer_profile(self, chat: ChatRequest) -> StudentProfileConfig:
        """The student's profile read from the conversation (teacher turns included, so a short reply is read
        against the explanation before it). A failing LLM reader falls back to the embedding reader."""
        messages = chat.conversation()
        if self._profile_llm is not None:
            try:
                return (await aread_profile(messages, "llm", llm_reader=self._profile_llm)).profile
            except Exception as e:  # the endpoint or its reply failed: still route this request
                log.warning("LLM profile reader failed (%s: %s); using the embedding reader", type(e).__name__, e)
        method = "cues" if self.cfg.profile_reader == "cues" else "embedding"
        return (await aread_profile(messages, method)).profile

    def _read_token(self) -> str:
        """The bearer token from this replica's environment (never from the app's config or runtime_env)."""
        if not self.cfg.auth_token_env:
            return ""
        token = os.environ.get(self.cfg.auth_token_env, "")
        if not token:
            raise RuntimeError(f"serve.auth_token_env is {self.cfg.auth_token_env!r}, but that variable is not set "
                               "(or empty) in the router replica's environment: set it on every node before "
                               "`ray start` (or before `parallel-r1 serve`, which starts Ray with it)")
        return token

    def _make_router(self, served: ServedSet) -> Router:
        return Router(list(served.models), served.routing_table, self.cfg.static_routes)

    def _routes(self) -> Router:
        """The router of the current served set, re-read (at most every `serve.reload_interval_s`) when the
        promotion record or routing table changed; a record that cannot be read keeps the current set serving."""
        now = time.monotonic()
        if now - self._checked >= self.cfg.reload_interval_s:
            self._checked = now
            if files_stamp(self.workdir) != self._served.stamp:
                try:
                    served = read_served(self.workdir, self.cfg)
                    router = self._make_router(served)
                except Exception as e:  # noqa: BLE001 - keep serving what was promoted before
                    log.warning("the served set could not be re-read (%s: %s); serving the previous one",
                                type(e).__name__, e)
                    self._served = replace(self._served, stamp=files_stamp(self.workdir))
                else:
                    self._served, self._router = served, router
                    log.info("now serving %s", {n: v.ref for n, v in served.models.items()})
        return self._router

    def _authorized(self, request: Request) -> bool:
        if not self.cfg.auth_token_env:
            return True
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        # header values arrive as latin-1 text: compare bytes, so no character can make the comparison raise
        return scheme.lower() == "bearer" and hmac.compare_digest(sent.strip().encode("latin-1"),
                                                                  self.token.encode("utf-8"))

    def _check_auth(self, request: Request) -> None:
        if not self._authorized(request):
            raise APIError(401, "missing or invalid bearer token (Authorization: Bearer <token>)",
                           code="invalid_api_key", kind="authentication_error")

    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok"}

    @api.get("/ready")
    async def ready(self, request: Request) -> JSONResponse:
        """Ready when the model deployment answers; what is served (and why not) only to an authorized client."""
        try:
            await self.first_answer.check()
        except NotReady as e:  # the backend is not up (yet), or failing: not ready, which is not a client error
            return e.response(detail=self._authorized(request))
        router = self._routes()
        served = self._served
        if not self._authorized(request):
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "ready", "models": sorted(router.available),
                             "versions": {n: v.ref for n, v in served.models.items()},
                             "kinds": {n: v.kind for n, v in served.models.items()},
                             "not_served": served.unservable})

    @api.get("/dashboard")
    async def dashboard(self, request: Request):
        """The ParallelScoreboard of the run directory, rendered now."""
        try:
            self._check_auth(request)
            page = await asyncio.to_thread(lambda: render(collect(self.board_cfg)))
        except APIError as e:
            return error_response(e)
        except UserFacingError as e:  # a corrupt record: say which file, keep serving
            return error_response(APIError(503, f"the scoreboard cannot be drawn: {e}", kind="server_error"))
        return HTMLResponse(page)

    def _model_entries(self) -> list[dict]:
        """OpenAI model objects: the router's own id, then each served model with its version and kind."""
        entries = [{"id": self.cfg.router_model}, *({"id": name, "version": (t := self._served.target(name)).ref,
                                                     "kind": t.kind} for name in sorted(self._routes().available))]
        return [{**e, "object": "model", "created": 0, "owned_by": "parallel-r1"} for e in entries]

    @api.get("/v1/models")
    async def list_models(self, request: Request) -> JSONResponse:
        try:
            self._check_auth(request)
        except APIError as e:
            return error_response(e)
        return JSONResponse({"object": "list", "data": self._model_entries()})

    @api.get("/v1/models/{model_id:path}")
    async def get_model(self, model_id: str, request: Request) -> JSONResponse:
        try:
            self._check_auth(request)
            found = [e for e in self._model_entries() if e["id"] == model_id]
            if not found:
                raise APIError(404, f"model {model_id!r} does not exist", param="model", code="model_not_found")
        except APIError as e:
            return error_response(e)
        return JSONResponse(found[0])

    @api.post("/v1/chat/completions")
    async def chat_completions(self, request: Request):
        started = time.perf_counter()
        try:
            self._check_auth(request)
            chat = parse_request(await request.body(), self.cfg)
            profile, profile_source = requested_profile(chat)
            if profile is None and chat.model == self.cfg.router_model:  # read only when it picks the model
                profile, profile_source = await self._infer_profile(chat), "inferred"
            route = self._pick(chat, profile)
            target = self._served.target(route.specialist)
            if self._client(target) is self.backend:  # a 503 while the model deployment is starting
                await self.first_answer.wait()
        except APIError as e:
            return error_response(e)
        parallel = target.parallel or self.cfg.parallel_format
        grounded = await self.grounding.ground(self._conversation(chat, route.specialist, parallel))
        extra = {"specialist": route.specialist, "version": target.ref, "route_source": route.source,
                 "student_profile": {"kind": profile.kind, "traits": profile.traits, "source": profile_source}
                 if profile else {"kind": None, "traits": [], "source": "not read"},
                 **({"parallel_view": chat.parallel_view} if parallel else {})}
        headers = {SPECIALIST_HEADER: route.specialist, VERSION_HEADER: target.ref}
        record = {"specialist": route.specialist, "version": target.ref, "profile": profile,  # history: once answered
                  "profile_source": profile_source, "route_source": route.source, "started": started}
        student = parallel and chat.parallel_view == "student"
        if chat.stream:
            return await self._streamed(chat, grounded, target, student, extra, headers, record, request_id(request))
        timeout = self.cfg.request_timeout_s
        try:
            result = await asyncio.wait_for(self._generate(grounded, request_sampling(chat, self.policy), target),
                                            timeout)
        except TimeoutError:
            self.metrics.failed(route.specialist, "Timeout")
            return error_response(timed_out(timeout))
        except Exception as e:
            self.metrics.failed(route.specialist, type(e).__name__)
            return error_response(backend_failure(e, request_id(request)))
        self.metrics.answered(route.specialist, target.ref, route.source, time.perf_counter() - started)
        extra.update(grounded.extra)
        record["history"] = grounded.conversation  # without the notes when they did not fit
        if student:
            result = student_generation(result)
        if result.error:
            return error_response(refusal(result.error))
        cid = completion_id()
        body = completion_body(cid, chat.model, result.texts, result.finish_reasons, result.prompt_tokens,
                               result.completion_tokens, extra)
        return JSONResponse(body, headers=headers, background=self._grading(cid, result.texts[0], record))

    def _grading(self, cid: str, reply: str, record: dict) -> BackgroundTask | None:
        """The rubric grading of this reply after the response, for the configured share of replies; `record`:
        the request's fields of the score log line and `started` (its perf_counter start)."""
        if not self.grader.should_grade():
            return None
        fields = {k: v for k, v in record.items() if k != "started"}
        fields.update(request_id=cid, reply=reply, latency_s=time.perf_counter() - record["started"])
        async def submit() -> None:  # to the grading thread (`OnlineGrader.submit`), after the response is sent
            self.grader.submit(**fields)

        return BackgroundTask(submit)

    async def _generate(self, grounded: Grounded, sampling, target: Target) -> Generation:
        result = await self._client(target).generate(grounded.conversation, sampling, target)
        if grounded.drop_notes(result.error):
            result = await self._client(target).generate(grounded.conversation, sampling, target)
        return result

    def _client(self, target: Target):
        """What answers for `target`: the OpenAI-compatible endpoint for an OpenAI fine-tuned id (served only when
        configured), else the model backend."""
        return self.remote if target.kind == "openai" else self.backend

    async def _streamed(self, chat: ChatRequest, grounded: Grounded, target: Target, student: bool,
                        extra: dict, headers: dict, record: dict, rid: str):
        """A streamed reply (`student`: as the student view). The first event is awaited before answering: a refused
        request (or a failed backend) still gets its 4xx (5xx) JSON error rather than a stream. The whole stream has
        `serve.request_timeout_s`."""
        deadline = time.monotonic() + self.cfg.request_timeout_s
        while True:
            events = self._client(target).stream(grounded.conversation, request_sampling(chat, self.policy), target)
            events = aiter(student_stream(events, chat.n) if student else events)
            try:
                first = await asyncio.wait_for(anext(events), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await events.aclose()
                return error_response(timed_out(self.cfg.request_timeout_s))
            except Exception as e:
                return error_response(backend_failure(e, rid))
            if not (isinstance(first, Generation) and grounded.drop_notes(first.error)):
                break
            await events.aclose()
        if isinstance(first, Generation) and first.error:
            return error_response(refusal(first.error))
        extra.update(grounded.extra)
        record["history"] = grounded.conversation
        cid = completion_id()
        state: dict = {}

        async def grade_later() -> None:
            if "reply" in state:
                self.metrics.answered(record["specialist"], target.ref, record["route_source"],
                                      time.perf_counter() - record["started"])
            if "reply" in state and (task := self._grading(cid, state["reply"], record)) is not None:
                await task()

        body = self._sse(cid, chat, first, events, extra, state, deadline, rid)
        return StreamingResponse(body, media_type="text/event-stream", headers=headers,
                                 background=BackgroundTask(grade_later))

    async def _sse(self, cid: str, chat: ChatRequest, first: Delta | Generation, events: AsyncIterator,
                   extra: dict, state: dict, deadline: float, rid: str) -> AsyncIterator[str]:
        """OpenAI SSE: a role chunk per choice, content chunks as generated, a finish_reason chunk per choice,
        a usage chunk when `stream_options.include_usage`, then `[DONE]`. `state["reply"]`: choice 0's text. A
        failure or the deadline passing ends the stream with an OpenAI error event (and stops the generation)."""
        for i in range(chat.n):
            yield event(chunk_body(cid, chat.model, i, {"role": "assistant", "content": ""}, None, extra))
        item = first
        try:
            while isinstance(item, Delta):
                yield event(chunk_body(cid, chat.model, item.index, {"content": item.text}, None, extra))
                item = await asyncio.wait_for(anext(events), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            await events.aclose()
            yield event(timed_out(self.cfg.request_timeout_s).body())
            return
        except Exception as e:  # the backend failed mid-stream
            yield event(backend_failure(e, rid).body())
            return
        for i, reason in enumerate(item.finish_reasons):
            yield event(chunk_body(cid, chat.model, i, {}, reason, extra))
        if chat.stream_options and chat.stream_options.include_usage:
            yield event(usage_body(cid, chat.model, item.prompt_tokens, item.completion_tokens, extra))
        yield "data: [DONE]\n\n"
        state["reply"] = item.texts[0]

    def _pick(self, chat: ChatRequest, profile: StudentProfileConfig) -> Route:
        router = self._routes()
        if chat.model == self.cfg.router_model:
            return router.route(profile.kind)
        if chat.model in router.available:
            return Route(chat.model, "request.model")
        known = ", ".join([self.cfg.router_model, *sorted(router.available)])
        raise APIError(404, f"model {chat.model!r} does not exist; available models: {known}", param="model",
                       code="model_not_found")

    def _conversation(self, chat: ChatRequest, specialist: str, parallel: bool) -> list[dict]:
        """The messages the model sees: the specialist's training system prompt first (unless the client sent
        one), and the policy's parallel-thinking instruction when the model answers in that format."""
        conversation = chat.conversation()
        if self.cfg.add_system_prompt:
            conversation = with_system_prompt(conversation, self.system_prompts.get(specialist,
                                                                                    self.system_prompts.get("", "")))
        if parallel:
            conversation = with_instruction(conversation, self.policy.instruction())
        return conversation
