"""Choose the chat backend named in the discovery config."""

from __future__ import annotations

from parallel_r1.config import DiscoverConfig
from parallel_r1.discover.backend import ChatBackend


def build_backend(cfg: DiscoverConfig) -> ChatBackend:
    if cfg.backend == "procedural":
        from parallel_r1.discover.procedural import ProceduralBackend

        return ProceduralBackend(seed=cfg.seed)
    from parallel_r1.discover.openai_backend import OpenAIBackend

    return OpenAIBackend(cfg.openai, seed=cfg.seed, roleplay=cfg.roleplay)
