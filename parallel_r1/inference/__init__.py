"""Generation from a base model and its LoRA adapters, through one interface (`InferenceEngine`).

vLLM logs at WARNING unless VLLM_LOGGING_LEVEL says otherwise: its INFO lines (whole config dumps) would
drown the stages' progress and tables. Set before anything here can import vLLM.
"""

import os

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

from parallel_r1.inference.engine import Completion, InferenceEngine, SamplingParams
from parallel_r1.inference.factory import build_engine, resolve_engine_name, vllm_available

__all__ = ["Completion", "InferenceEngine", "SamplingParams", "build_engine", "resolve_engine_name", "vllm_available"]
