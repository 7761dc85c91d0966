"""`parallel-r1 compare`: every specialist against the base model on held-out prefixes, in its niche and across
niches, with confidence intervals, the success criteria, a report and the routing table."""
