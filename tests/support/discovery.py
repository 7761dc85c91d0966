"""Running the discover stage in the test process, optionally with a hook on the pool's progress."""

from __future__ import annotations

from parallel_r1.discover.stage import DiscoverStage


def discover_with_hook(cfg, hook=None):
    """setup() -> run() -> cleanup() of `DiscoverStage` (`hook`: the pool's progress hook, e.g. to kill an actor)."""
    stage = DiscoverStage(cfg, show_progress=False)
    try:
        stage.setup()
        if hook is not None:
            stage.pool.progress_hook = hook
        return stage.run()
    finally:
        stage.cleanup()
