"""`parallel-r1 rl`: GRPO on the parallel-SFT model, with vLLM-backed generation, rubric / diversity / verification /
format rewards and an easy → medium → hard curriculum."""
