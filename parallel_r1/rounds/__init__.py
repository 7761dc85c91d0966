"""The next round: compare's results and decision turned into a config overlay (`parallel-r1 next`)."""
