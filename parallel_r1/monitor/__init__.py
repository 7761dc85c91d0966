"""Watching served models: signals from the online grading log (`log`, `signals`), the triggers they fire
(`triggers`), retraining queued as Ray jobs (`queue`), one pass or a watch loop (`stage`), the scoreboard page
(`scoreboard`)."""
