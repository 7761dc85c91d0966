"""Field groups that several sections share: OpenAI API access and a chat endpoint, reply sampling, Ray Train
workers and vLLM engine memory. A section inherits a group to keep the group's fields flat under its own keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from parallel_r1.config.base import _Section

# One sampling field each, for sections that hold only some of them or start them at other defaults.
Temperature = Annotated[float, Field(ge=0, le=2, description="Sampling temperature (0: greedy).")]
TopP = Annotated[float, Field(gt=0, le=1, description="Nucleus sampling mass.")]
MaxTokens = Annotated[int, Field(ge=1, description="Token budget of one reply.")]
CpusPerWorker = Annotated[float, Field(gt=0, description="CPUs reserved per worker (fractions allowed).")]
TimeoutS = Annotated[float, Field(gt=0, description="Per-request timeout in seconds.")]
StoragePath = Annotated[str | None, Field(description="Ray Train storage (absolute path or URI).")]


def is_uri(storage: str) -> bool:
    """Whether a location is a URI (`s3://…`, `gs://…`) rather than a path."""
    return "://" in storage


def train_storage(storage: str | Path) -> str:
    """Ray Train's storage as it wants it: a URI as given, a path made absolute."""
    return str(storage) if is_uri(str(storage)) else str(Path(storage).resolve())


class SamplingConfig(_Section):
    """How replies are sampled: temperature, nucleus mass and token budget."""

    temperature: Temperature = 0.8
    top_p: TopP = 0.95
    max_tokens: MaxTokens = 256


class OpenAIAPIConfig(_Section):
    """Access to an OpenAI-compatible API: its root, the key's variable, timeout and retries."""

    base_url: str = Field("https://api.openai.com/v1", description="API root of OpenAI or any compatible server.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key.")
    timeout_s: TimeoutS = 30.0
    max_retries: int = Field(5, ge=0, description="Retries on 429, 5xx, timeouts and connection errors.")


class OpenAIEndpointConfig(OpenAIAPIConfig):
    """An OpenAI-compatible chat endpoint: the API, the model asked, its backoff and how its replies are sampled."""

    model: str = Field("gpt-4o-mini", description="Model name sent with each request.")
    backoff_s: float = Field(0.5, ge=0, description="First backoff in seconds; doubles each retry, with jitter.")
    max_backoff_s: float = Field(20.0, ge=0, description="Upper bound of one backoff in seconds.")
    temperature: Temperature = 0.8
    max_tokens: MaxTokens = 300
    context_tokens: int | None = Field(None, ge=256, description="The served model's context window in tokens; "
                                                                 "prompts are trimmed to fit it. None: asked of "
                                                                 "the server's /v1/models (vLLM's max_model_len), "
                                                                 "else no trimming.")


class RayTrainWorkersConfig(_Section):
    """The Ray Train workers of a training run: how many, their resources, where checkpoints go, restarts."""

    num_workers: int = Field(1, ge=1, description="Data-parallel Ray Train workers per run.")
    cpus_per_worker: CpusPerWorker = 1.0
    use_gpu: bool = Field(False, description="Give each worker GPUs (cluster).")
    gpus_per_worker: float = Field(1.0, gt=0, description="GPUs per worker when use_gpu (fractions share one).")
    storage_path: StoragePath = None
    max_failures: int = Field(1, ge=0, description="Ray Train restarts of a failed run (from its checkpoint).")


class VLLMMemoryConfig(_Section):
    """How much memory and context a vLLM engine gets."""

    kv_cache_memory_bytes: int = Field(512 * 1024**2, ge=1, description="vLLM on CPU: KV cache size in bytes "
                                                                       "(else sized from one NUMA node's memory).")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1, description="vLLM on GPU: the share of GPU memory it "
                                                                        "may take.")
    max_model_len: int | None = Field(None, ge=16, description="Context length (prompt and reply tokens); None: "
                                                               "the model's own.")
