"""`parallel-r1 batch`: the stratified specialist batches cut from graded dialogues, with their report (pure domain,
no Ray, no torch)."""

from parallel_r1.batch.batches import (
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
from parallel_r1.batch.report import render_report, sft_records, summary_rows, write_batches
from parallel_r1.batch.sampler import StratifiedSampler, mean_density, teacher_openers

__all__ = [
    "Batch", "BatchSet", "BatchShortfallError", "Constraint", "Shortfall", "StratifiedSampler",
    "UngradedDialoguesError", "batch_constraints", "build_batches", "confidence_tier", "describe", "eligible",
    "mean_density", "render_report", "sft_records", "summary_rows", "teacher_openers",
    "write_batches",
]
