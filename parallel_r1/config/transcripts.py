"""The `transcripts` section: how `parallel-r1 import` checks real tutoring transcripts before they join the run."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from parallel_r1.config.base import _Section


class TranscriptsConfig(_Section):
    max_chars: int = Field(8000, ge=1, description="Longest message (in characters) an imported transcript may hold; "
                                                   "what happens to a longer one is `too_long`.")
    too_long: Literal["reject", "truncate"] = Field(
        "reject", description="A message over max_chars: reject its row (an error, or a line in "
                              "import_rejects.jsonl with --skip-bad), or truncate: cut it to max_chars at a word "
                              "boundary and import the row.")
