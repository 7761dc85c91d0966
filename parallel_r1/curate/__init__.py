"""Curation: the stratified specialist batches cut from graded dialogues (pure domain, no Ray, no torch)."""

from parallel_r1.curate.batches import (
    Batch,
    BatchSet,
    BatchShortfallError,
    Constraint,
    Shortfall,
    UngradedDialoguesError,
    batch_constraints,
    build_batches,
    confidence_tier,
    describe,
    eligible,
)
from parallel_r1.curate.report import render_report, sft_records, summary_rows, system_prompt, write_batches
from parallel_r1.curate.sampler import StratifiedSampler, mean_density, teacher_openers

__all__ = [
    "Batch", "BatchSet", "BatchShortfallError", "Constraint", "Shortfall", "StratifiedSampler",
    "UngradedDialoguesError", "batch_constraints", "build_batches", "confidence_tier", "describe", "eligible",
    "mean_density", "render_report", "sft_records", "summary_rows", "system_prompt", "teacher_openers",
    "write_batches",
]
