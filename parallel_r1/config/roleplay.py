"""The `discover.roleplay` section: the rules a real model's turns must keep before they join a dialogue."""

from __future__ import annotations

from pydantic import Field

from parallel_r1.config.base import _Section


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
