"""The `discover` section: simulated tutoring dialogues on a pool of Ray actors, and the rules
(`discover.roleplay`) a real model's turns must keep."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.base import _Section
from parallel_r1.config.groups import OpenAIEndpointConfig


class RolePlayConfig(_Section):
    max_student_chars: int = Field(600, ge=20, description="Longest student message kept; a longer one is asked "
                                                           "for again.")
    max_teacher_chars: int = Field(1500, ge=20, description="Longest tutor message kept; a longer one is asked for "
                                                            "again.")
    max_retries: int = Field(2, ge=0, description="Times a turn that breaks the rules (out of character, speaker "
                                                  "labels or the other side's lines, AI talk, too long or cut off, a "
                                                  "repeat) is asked for again with a note on what to fix; after "
                                                  "that the dialogue attempt fails and, once discover's attempts "
                                                  "are spent, is listed in discover_failures.jsonl.")


class DiscoverConfig(_Section):
    n: int = Field(2000, ge=0, description="Discovery iterations (dialogues) to reach in total.")
    include_special: bool = Field(True, description="Add the four special cards and trait-heavy profiles.")
    profile_mix: dict[str, float] | None = Field(
        None, description="Weight per student profile kind in the plan (e.g. {standard: 1, hyperfocus: 3}; a kind "
                          "left out or of weight 0 is not drawn, but a special card keeps the kind it was written "
                          "for); None: the standard mix, or the trait-heavy one with include_special. The flag: "
                          "--profile-mix kind=weight,...")
    card_dir: str | None = Field(
        None, description="Folder of scenario card files (*.yaml, schema in docs/stages.md) added to the built-in "
                          "cards, e.g. `scenarios` (the repository's own); a relative path is read from the current "
                          "directory. Every stage that looks a card up by id reads it. None: the built-in cards only.")
    backend: Literal["procedural", "openai"] = Field("procedural", description="Chat backend.")
    seed: int = Field(0, description="Seed of the discovery plan and the procedural backend.")
    num_actors: int = Field(2, ge=1, description="Ray actors in the discovery pool.")
    max_in_flight: int = Field(32, ge=1, description="Dialogues in flight per actor (async).")
    chunk_size: int = Field(8, ge=1, description="Dialogues per actor call (amortises Ray's per-call cost).")
    actor_num_cpus: float = Field(0.5, ge=0, description="CPUs reserved per discovery actor.")
    dialogue_attempts: int = Field(2, ge=1, description="Attempts per dialogue before it is a failure.")
    max_actor_restarts: int = Field(10, ge=0, description="Crashed actors replaced before giving up.")
    flush_every: int = Field(50, ge=1, description="Append finished dialogues to Parquet every N.")
    grade: bool = Field(True, description="Grade each dialogue as it is discovered.")
    openai: OpenAIEndpointConfig = Field(default_factory=OpenAIEndpointConfig,
                                         description="The chat endpoint of the openai backend.")
    roleplay: RolePlayConfig = Field(default_factory=RolePlayConfig,
                                     description="Rules the openai backend's turns must keep.")
