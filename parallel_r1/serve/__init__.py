"""`parallel-r1 serve`: an OpenAI-compatible ensemble router on Ray Serve that picks the specialist per student profile.

`app.build_app` / `app.app_builder` build the application (router + `hf` or `vllm` model backend) from a run
directory; `stage.start_local` runs it on a local Ray. Schema, routing, profile inference and online grading
are plain modules, testable without Ray.
"""
