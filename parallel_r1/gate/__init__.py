"""`parallel-r1 gate`: the promotion gate: a model replaces the promoted one only when it beats it on `compare`'s
held-out results and passes the compliance checks; every decision goes to promotion.json."""
