"""`parallel-r1 parallel-sft`: the Parallel-R1 cold start: build the parallel dataset, SFT the base model on it with
the tags as tokens, and check its uplift before RL."""
