"""`parallel-r1 tune`: a Ray Tune sweep of batch size, learning rate and LoRA rank for one specialist, each trial
scored on its niche the way `compare` scores it."""
