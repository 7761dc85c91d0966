"""The `serve` section: the Ray Serve application that routes each request to a specialist."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from parallel_r1.config.base import _Section


def _default_static_routes() -> dict[str, str]:
    return {
        "standard": "varied_original_diverse",
        "neurodivergent": "neurodivergent",
        "rejects_metaphor": "neurodivergent",
        "executive_function_gap": "neurodivergent",
        "hyperfocus": "neurodivergent",
        "bad_prior_teacher": "prior_trauma_recovery",
    }


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Address the Serve HTTP proxy listens on (0.0.0.0: every interface).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")
    backend: Literal["hf", "vllm"] = Field("hf", description="hf: one deployment with transformers + PEFT and every "
                                                             "adapter; vllm: Ray Serve LLM with multi-LoRA.")
    app_name: str = Field("parallel_r1", description="Name of the Serve application.")
    route_prefix: str = Field("/", pattern=r"^/", description="URL prefix of the application on the Serve proxy.")
    router_model: str = Field("parallel-r1", description="Model id that asks the router to pick the specialist "
                                                         "(a specialist's own name or 'base' bypasses routing).")
    auth_token_env: str | None = Field(None, description="Environment variable holding the bearer token clients "
                                                         "must send, read from the router replicas' environment "
                                                         "(never put in the app's config); None: no auth.")
    router_replicas: int = Field(1, ge=1, description="Router replicas (without autoscaling).")
    model_replicas: int = Field(1, ge=1, description="Model deployment replicas (without autoscaling).")
    autoscaling: bool = Field(False, description="Autoscale both deployments between min_replicas and max_replicas.")
    min_replicas: int = Field(1, ge=0, description="Autoscaling: fewest replicas per deployment.")
    max_replicas: int = Field(2, ge=1, description="Autoscaling: most replicas per deployment.")
    target_ongoing_requests: float = Field(4.0, gt=0, description="Autoscaling: ongoing requests per replica aimed at.")
    router_num_cpus: float = Field(0.1, ge=0, description="CPUs reserved per router replica (fractions allowed).")
    model_num_cpus: float = Field(0.5, ge=0, description="CPUs reserved per hf model replica (fractions allowed).")
    model_num_gpus: float = Field(0.0, ge=0, description="GPUs per hf model replica (vllm: see use_gpu).")
    model_resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources each hf model "
                                                                                "replica needs (e.g. {specialist: 1}), "
                                                                                "placing it on the nodes that have "
                                                                                "them.")
    use_gpu: bool = Field(False, description="vllm backend: run the engine on a GPU instead of the CPU build.")
    vllm_in_router: bool = Field(False, description="vllm backend: each router replica runs the vLLM engine itself "
                                                    "instead of calling a Serve LLM deployment (one process and "
                                                    "one hop less per request; router_replicas are then the "
                                                    "engine's replicas, model_replicas unused).")
    engine_metrics: bool = Field(True, description="vllm backend: the engine's metrics through Ray's metrics API "
                                                   "(Serve LLM's log_engine_metrics); false spares every request "
                                                   "their recording.")
    grpc_handles: bool = Field(True, description="The router calls the model deployment over Ray Serve's "
                                                 "inter-deployment gRPC (by value) instead of through Ray object "
                                                 "references.")
    max_ongoing_requests: int = Field(32, ge=1, description="Requests a model replica takes at once before "
                                                            "queueing.")
    max_queued_requests: int = Field(128, ge=-1, description="Requests the model deployment queues beyond those "
                                                             "before the router answers 503 with Retry-After (-1: "
                                                             "unbounded).")
    router_max_ongoing_requests: int = Field(256, ge=1, description="Requests a router replica takes at once (it "
                                                                    "mostly waits on the model).")
    request_timeout_s: float = Field(300.0, gt=0, description="A reply not generated within this many seconds is "
                                                              "stopped and answered 504 (a stream: ended with an "
                                                              "error event).")
    access_log: bool = Field(False, description="Serve's per-request access log lines in the replicas' logs.")
    max_tokens_limit: int = Field(1024, ge=1, description="Largest max_tokens a request may ask for (else 400).")
    max_n: int = Field(4, ge=1, description="Largest n (choices per request) a request may ask for (else 400).")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Largest request body in bytes (else 413, before it "
                                                                "is parsed).")
    max_messages: int = Field(256, ge=1, description="Most messages one request may carry (else 400).")
    max_message_chars: int = Field(32_000, ge=1, description="Most characters in one message (else 400, before "
                                                             "any model work).")
    add_system_prompt: bool = Field(True, description="Prepend the specialist's training system prompt when the "
                                                      "request has no system message.")
    parallel_format: bool = Field(False, description="Ask every served model for Parallel-R1 thinking (the "
                                                     "parallel.inference policy's instruction in the system "
                                                     "prompt); the Parallel-R1 models (parallel_sft, parallel_rl) "
                                                     "are always asked, the finetune specialists were not trained "
                                                     "on it. Such replies are returned as the student view unless "
                                                     "a request sets parallel_view=raw.")
    static_routes: dict[str, str] = Field(default_factory=_default_static_routes,
                                          description="Profile kind -> specialist, used when <workdir>/eval/"
                                                      "routing.json is missing or names no loaded model for it.")
    profile_reader: Literal["cues", "embedding", "llm"] = Field(
        "embedding", description="How a student's traits are read from their messages when a request brings no "
                                 "profile: cues (pure-Python patterns), embedding (cues + a classifier over sentence "
                                 "embeddings), llm (the grade.judge endpoint).")
    grading_fraction: float = Field(0.1, ge=0, le=1, description="Share of served replies graded by the rubric "
                                                                 "after the response is sent.")
    score_log: str | None = Field(None, description="JSONL score log of online grading; None: "
                                                    "<workdir>/serve/scores.jsonl.")
    log_conversations: bool = Field(True, description="Online grading records the graded conversation and reply "
                                                      "(so real traffic can become training data); False: scores "
                                                      "only.")
    ready_timeout_s: float = Field(600.0, gt=0, description="How long `parallel-r1 serve` waits for the app.")
    reload_interval_s: float = Field(2.0, gt=0, description="How often a router replica checks the promotion record "
                                                          "and routing table for changes (a promotion, rollback or "
                                                          "new routes is then served without a restart).")
    max_loaded_adapters: int = Field(16, ge=1, description="hf backend: adapters a replica keeps loaded; the least "
                                                           "recently used is dropped beyond this.")
    max_loaded_models: int = Field(2, ge=1, description="hf backend: promoted full models (parallel_sft, "
                                                        "parallel_rl) a replica keeps loaded, each an engine of its "
                                                        "own loaded on its first request; the least recently used "
                                                        "is dropped beyond this.")
    openai_base_url: str | None = Field(None, description="API root of the OpenAI-compatible endpoint that answers "
                                                          "for promoted OpenAI fine-tuned versions (e.g. "
                                                          "https://api.openai.com/v1); None: those versions are "
                                                          "listed as not served.")
    openai_api_key_env: str | None = Field("OPENAI_API_KEY", description="Environment variable holding the API key "
                                                                         "of serve.openai_base_url, read from the "
                                                                         "router replicas' environment; None: no "
                                                                         "key (a local server).")
    openai_timeout_s: float = Field(60.0, gt=0, description="Timeout in seconds of one request to "
                                                            "serve.openai_base_url.")
    openai_max_retries: int = Field(2, ge=0, description="Retries of a request to serve.openai_base_url on 429, "
                                                         "5xx, timeouts and connection errors (before anything was "
                                                         "streamed), with the openai client's backoff.")

    @model_validator(mode="after")
    def _engine_in_router(self) -> ServeConfig:
        if self.vllm_in_router and self.backend != "vllm":
            raise ValueError(f"serve.vllm_in_router needs serve.backend 'vllm', not {self.backend!r}")
        return self

    @field_validator("max_queued_requests")
    @classmethod
    def _queue_size(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (unbounded) or at least 1")
        return value
