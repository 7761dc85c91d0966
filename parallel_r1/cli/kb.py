"""The knowledge-base commands: `kb ingest PATH...` and `kb query "text"`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parallel_r1.cli.common import ConfigOpt, SetOpt, WorkdirOpt, _config, app, user_errors

kb_app = typer.Typer(no_args_is_help=True, help="The knowledge base: teaching notes in a vector store.")
app.add_typer(kb_app, name="kb")


@kb_app.command("ingest")
@user_errors
def kb_ingest(
    paths: Annotated[list[Path] | None, typer.Argument(help="Markdown, text or JSONL files, or folders of them.")
                     ] = None,
    builtin: Annotated[bool, typer.Option("--builtin", help="Also the built-in teaching notes (one per scenario "
                                                            "card topic).")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Chunk files by headings and length, embed the passages not yet stored and store them all at once
    (re-ingesting the same text adds nothing)."""
    from parallel_r1.kb.stage import run_ingest

    run_ingest(_config(config, workdir, set_), list(paths or []), builtin=builtin)


@kb_app.command("query")
@user_errors
def kb_query(
    text: Annotated[str, typer.Argument(help="What to look up.")],
    k: Annotated[int, typer.Option("-k", min=1, help="Passages to show.")] = 5,
    subject: Annotated[str | None, typer.Option(help="Only passages of this subject (programming, maths...).")
                       ] = None,
    card: Annotated[str | None, typer.Option(help="Only passages for this scenario card id.")] = None,
    source: Annotated[str | None, typer.Option(help="Only passages of this source (as `kb ingest` recorded it).")
                      ] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """The passages closest to TEXT, best first, with their cosine similarity."""
    from parallel_r1.kb.stage import run_query
    from parallel_r1.kb.store import Filters

    run_query(_config(config, workdir, set_, log_file=False), text, k, Filters(subject, card, source))
