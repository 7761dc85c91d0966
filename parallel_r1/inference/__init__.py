"""Generation from a base model and its LoRA adapters, through one interface (`InferenceEngine`)."""

from parallel_r1.inference.engine import Completion, InferenceEngine, SamplingParams
from parallel_r1.inference.factory import build_engine, resolve_engine_name, vllm_available

__all__ = ["Completion", "InferenceEngine", "SamplingParams", "build_engine", "resolve_engine_name", "vllm_available"]
