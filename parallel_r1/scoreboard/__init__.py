"""The ParallelScoreboard: what is served and how it is doing, as one HTML page (`board` gathers it from the run
directory, `page` draws it); `parallel-r1 scoreboard` writes it, Serve shows it at /dashboard."""
