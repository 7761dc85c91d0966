"""The lifecycle every stage follows, after torchtune's recipes: `setup()` → `run()` → `cleanup()`, with the
cleanup run whether or not the stage failed."""

from __future__ import annotations

from typing import Any, Protocol


class Recipe(Protocol):
    def setup(self) -> None: ...

    def run(self) -> Any: ...

    def cleanup(self) -> None: ...


def run_recipe(stage: Recipe) -> Any:
    """Set the stage up and run it; always clean it up; return what `run()` returned."""
    try:
        stage.setup()
        return stage.run()
    finally:
        stage.cleanup()
