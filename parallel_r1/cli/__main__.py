"""`python -m parallel_r1.cli`: the `parallel-r1` command."""

from parallel_r1.cli import app

app()
