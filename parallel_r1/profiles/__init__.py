"""Reading a student's traits from their messages: pure-Python cues, a classifier over sentence embeddings
stacked on the cues, or an LLM behind an OpenAI-compatible endpoint; and measuring a reader on labelled files."""

from parallel_r1.profiles.cues import Evidence
from parallel_r1.profiles.reader import (
    METHODS,
    ProfileReading,
    aread_profile,
    format_reading,
    infer_profile,
    read_profile,
    read_profiles,
)

__all__ = ["METHODS", "Evidence", "ProfileReading", "aread_profile", "format_reading", "infer_profile",
           "read_profile", "read_profiles"]
