"""The `llm_server` section: vLLM's OpenAI-compatible server on a model of the run directory, started by
`parallel-r1 llm-server` or, when `managed`, by the stages whose endpoint it stands in for."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.groups import VLLMMemoryConfig


class LLMServerConfig(VLLMMemoryConfig):
    managed: bool = Field(
        False, description="Start the server for the stages that use it and point their endpoints at it: "
                           "discover's chat backend when discover.backend is openai, the LLM judge when "
                           "grade.grader is llm or combined; stop it when they are done.")
    model: str | None = Field(None, description="The model folder served (a Hugging Face checkpoint with "
                                                "config.json); None: <workdir>/models/base, which `init-model` "
                                                "writes.")
    served_model_name: str | None = Field(None, description="The model name the server answers to; None: the "
                                                            "model folder's name.")
    host: str = Field("127.0.0.1", description="Address to listen on, and to reach the server at (0.0.0.0: every "
                                               "interface, reached at 127.0.0.1); Ray workers on other machines "
                                               "need this machine's own address.")
    port: int = Field(8100, ge=0, le=65535, description="HTTP port; 0: a free one, chosen at start.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights dtype. auto: float32 on CPU (vLLM's own auto picks bf16, slower there), the "
                            "checkpoint's dtype on a GPU.")
    start_timeout_s: float = Field(300.0, gt=0, description="Seconds to wait for the server to answer /v1/models "
                                                            "before the start is an error.")
    stop_timeout_s: float = Field(30.0, gt=0, description="Seconds a stopping server gets to exit before it is "
                                                          "killed.")
    extra_args: list[str] = Field(
        default_factory=list, description="Further server arguments, e.g. --enforce-eager (a faster start, no "
                                          "compiled graphs) or --structured-outputs-config.disable_any_whitespace.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables set for the server "
                                                                  "process, over the caller's.")
    module: str = Field("vllm.entrypoints.openai.api_server", description="Python module run as the server "
                                                                          "(`python -m`); any that takes vLLM's "
                                                                          "OpenAI-server arguments.")
