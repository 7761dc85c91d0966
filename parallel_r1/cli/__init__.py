"""`parallel-r1`: one thin command per stage; the logic lives in the package.

Errors a user can cause (bad config, missing artifact, unfillable batch in strict mode) exit with
code 2 and a one-line message, without a traceback. Each command that works on a run directory also logs to
<workdir>/logs/<command>.log (see `cli/logs.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from parallel_r1.cli.common import (
    ConfigOpt,
    ProfileMixOpt,
    SetOpt,
    WorkdirOpt,
    _config,
    app,
    profile_mix_flag,
    user_errors,
)
from parallel_r1.config import ConfigError, dump_config
from parallel_r1.console import console

__all__ = ["app"]

log = logging.getLogger(__name__)


@app.command()
@user_errors
def discover(
    n: Annotated[int | None, typer.Argument(help="Total dialogues to reach (resumes up to N).")] = None,
    include_special: Annotated[bool | None, typer.Option(
        "--include-special/--no-include-special", help="Special cards and trait-heavy profiles.")] = None,
    backend: Annotated[str | None, typer.Option(help="procedural | openai")] = None,
    num_actors: Annotated[int | None, typer.Option("--num-actors", "--actors", help="Ray actors in the pool.")] = None,
    max_in_flight: Annotated[int | None, typer.Option("--max-in-flight", "--in-flight",
                                                      help="Dialogues in flight per actor.")] = None,
    grade: Annotated[bool | None, typer.Option("--grade/--no-grade", help="Grade while discovering.")] = None,
    profile_mix: ProfileMixOpt = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Simulate teacher–student dialogues on a pool of Ray actors and append them to dialogues.parquet."""
    from parallel_r1.discover.stage import print_discover_summary, run_discover

    cfg = _config(config, workdir, set_, **{
        "discover.n": n, "discover.include_special": include_special, "discover.backend": backend,
        "discover.num_actors": num_actors, "discover.max_in_flight": max_in_flight, "discover.grade": grade,
        "discover.profile_mix": profile_mix_flag(profile_mix)})
    result = run_discover(cfg)
    print_discover_summary(result)
    if result.failed:
        log.warning("%d dialogue(s) failed; see %s/discover_failures.jsonl; run discover again to retry them",
                    result.failed, cfg.workdir)


@app.command("import")
@user_errors
def import_cmd(
    transcripts: Annotated[Path, typer.Argument(help="Tutoring transcripts: JSONL or Parquet in the OpenAI `messages` "
                                                     "format, one conversation per row.")],
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Import the valid rows and list the bad ones in "
                                                              "<workdir>/import_rejects.jsonl.")] = False,
    grader: Annotated[str | None, typer.Option(help="heuristic | llm | combined | fitted")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Check real transcripts, infer missing profiles, append them to dialogues.parquet and grade them."""
    from parallel_r1.transcripts.stage import run_import

    run_import(_config(config, workdir, set_, **{"grade.grader": grader}), transcripts, skip_bad=skip_bad)


@app.command("grade")
@user_errors
def grade_cmd(
    grader: Annotated[str | None, typer.Option(help="heuristic | llm | combined | fitted")] = None,
    force: Annotated[bool, typer.Option(help="Regrade dialogues this grader has already graded.")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Grade the dialogues in dialogues.parquet not yet graded by this grader; write the pattern-density report."""
    from parallel_r1.grade.stage import run_grade
    from parallel_r1.llm_server import managed_endpoints

    cfg = _config(config, workdir, set_, **{"grade.grader": grader})
    with managed_endpoints(cfg, ("judge",)) as served:
        result = run_grade(served, reuse_grades=not force)
    if result.failed:
        log.warning("%d dialogue(s) failed; see %s/grade_failures.jsonl; run grade again to retry them",
                    result.failed, cfg.workdir)


@app.command("validate-grader")
@user_errors
def validate_grader(
    labelled: Annotated[Path, typer.Argument(help="Replies with human labels (JSONL: history, response, labels).")],
    grader: Annotated[str | None, typer.Option(help="heuristic | llm | combined | fitted")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for validation.json / .png (default: "
                                                  "<workdir>/validation/<grader>).")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """How far a grader agrees with people: rho per human dimension with intervals, vs a question-mark baseline."""
    from parallel_r1.grade.validate_stage import run_validate

    run_validate(_config(config, workdir, set_, **{"grade.grader": grader}), labelled, out)


grader_app = typer.Typer(no_args_is_help=True, help="Graders fitted on your own human-labelled replies.")
app.add_typer(grader_app, name="grader")


@grader_app.command("fit")
@user_errors
def grader_fit(
    labelled: Annotated[Path, typer.Argument(help="Replies with human labels (JSONL: history, response, labels).")],
    out: Annotated[Path | None, typer.Option(help="Folder of the fitted grader (default: grade.fitted_path, else "
                                                  "<workdir>/grader/fitted).")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Fit a grader on rubric features + sentence embeddings; report its rho cross-validated by conversation."""
    from parallel_r1.grade.fitted_stage import run_grader_fit

    run_grader_fit(_config(config, workdir, set_), labelled, out)


@app.command("profile")
@user_errors
def profile_cmd(
    messages: Annotated[list[str] | None, typer.Argument(help="The student's messages, oldest first.")] = None,
    method: Annotated[str, typer.Option(help="cues | embedding | llm (the grade.judge endpoint)")] = "embedding",
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Measure the reader on a labelled JSONL instead "
                                                                  "(message(s) + traits per line).")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """The traits a student's messages show, the evidence for each and the specialist Serve would pick."""
    from parallel_r1.profiles.evaluate import profile_report

    console.print(profile_report(_config(config, workdir, set_, log_file=False), messages, method, eval_file))


@app.command()
@user_errors
def batch(
    strict: Annotated[bool | None, typer.Option("--strict/--no-strict", help="Fail when a batch is short.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Cut the six stratified specialist batches from the graded dialogues."""
    from parallel_r1.batch.stage import run_batch

    run_batch(_config(config, workdir, set_, **{"batch.strict": strict}))


@app.command()
@user_errors
def run(
    force: Annotated[bool, typer.Option(help="Re-run stages whose artifacts exist.")] = False,
    profile_mix: ProfileMixOpt = None,
    overlay: Annotated[Path | None, typer.Option(help="A config overlay written by `parallel-r1 next`, applied on "
                                                      "the config before --set.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """The whole pipeline (discover → grade → batch → init-model → finetune → compare → gate), skipping what is done."""
    from parallel_r1.pipeline import run_pipeline
    from parallel_r1.rounds.stage import overlay_sets

    sets = [*(overlay_sets(overlay) if overlay else []), *(set_ or [])]
    run_pipeline(_config(config, workdir, sets, **{"discover.profile_mix": profile_mix_flag(profile_mix)}), force=force)


@app.command("config")
@user_errors
def show_config(
    section: Annotated[str | None, typer.Argument(help="With --explain: one section, e.g. parallel.sft.")] = None,
    explain: Annotated[bool, typer.Option("--explain", help="Describe the fields (path, type, default, "
                                                            "description) instead of printing the config.")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Print the resolved configuration (defaults, YAML and overrides applied), or with --explain what each field
    means."""
    from parallel_r1.config import explain_config

    if explain:
        console.print(explain_config(section), markup=False, soft_wrap=True)
    elif section is not None:
        raise ConfigError(f"`config {section}` needs --explain (without it the whole resolved config is printed)")
    else:
        console.print(dump_config(_config(config, workdir, set_, log_file=False)), markup=False)


@app.command()
@user_errors
def submit(
    stage: Annotated[str, typer.Argument(help="The stage to run as a Ray job: discover, import, grade, batch, "
                                              "init-model, finetune, compare, gate, tune, parallel-sft, rl, monitor "
                                              "or run (its runtime env: jobs/<stage>.yaml).")],
    extra: Annotated[list[str] | None, typer.Argument(help="More arguments of the stage command (after --).")] = None,
    workdir: Annotated[str, typer.Option(help="The run directory: an absolute path on storage every node sees.")] = "",
    config: Annotated[str | None, typer.Option(help="Config file inside the repository (shipped with it).")] = None,
    address: Annotated[str, typer.Option(envvar="RAY_JOB_ADDRESS", help="Job server URL.")] = "http://127.0.0.1:8265",
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE for runtime_env.env_vars (repeatable).")] = None,
    follow: Annotated[bool, typer.Option("--wait/--no-wait", help="Stream the job's logs until it ends.")] = True,
) -> None:
    """Run a stage as a Ray job on a cluster (`ray job submit --runtime-env jobs/<stage>.yaml`), its logs streamed
    live; exits with 1 unless the job succeeded."""
    from parallel_r1 import jobs

    spec = jobs.stage_job(stage, workdir, config, extra, jobs.env_vars(env or []))
    client, job_id = jobs.submit(spec, address)
    console.print(f"submitted {job_id} to {address}: {spec.entrypoint}", markup=False)
    if follow:
        status = jobs.follow(client, job_id, lambda text: console.out(text, end="", highlight=False))
        console.print(f"job {job_id}: {status}")
        if status != "SUCCEEDED":
            raise typer.Exit(1)


@app.command("init-model")
@user_errors
def init_model(
    source: Annotated[str | None, typer.Option("--source", "--from", help="A packaged pretrained model to convert "
                                                                          "(smollm2-135m-instruct); default: the "
                                                                          "embedded one.")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if a complete model exists.")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Put the base model into <workdir>/models/base: the embedded tiny Llama pre-trained here, or a packaged
    pretrained instruct model converted to a Hugging Face checkpoint."""
    from parallel_r1.base_model.stage import init_base_model
    from parallel_r1.paths import RunPaths

    cfg = _config(config, workdir, set_, **{"base_model.source": source})
    init_base_model(cfg.base_model, RunPaths(cfg.workdir).base_model, force=force)


@app.command()
@user_errors
def finetune(
    backend: Annotated[str | None, typer.Option(help="ray | openai")] = None,
    batches: Annotated[str | None, typer.Option(help="Comma-separated batch names (default: all).")] = None,
    monolithic: Annotated[bool, typer.Option(help="One adapter on the union of the batches.")] = False,
    with_baseline: Annotated[bool, typer.Option(
        help="The specialists and the monolithic adapter: all at once, or it first (finetune.specialise_from).")
    ] = False,
    force: Annotated[bool, typer.Option(help="Re-run jobs that already succeeded.")] = False,
    parallel_format: Annotated[bool, typer.Option(help="The Parallel-R1 cold-start SFT instead (= parallel-sft).")
                               ] = False,
    cancel: Annotated[str | None, typer.Option(help="Cancel this job's OpenAI fine-tuning job instead (a name in "
                                                    "finetune_manifest.json); the manifest records it.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Fine-tune one LoRA specialist per batch, all at once (Ray Train), or via the OpenAI API."""
    from parallel_r1.finetune.stage import run_finetune
    from parallel_r1.finetune.watch import exit_code

    if parallel_format:
        return parallel_sft(force=force, config=config, workdir=workdir, set_=set_)
    names = [b.strip() for b in batches.split(",")] if batches else None
    cfg = _config(config, workdir, set_, **{"finetune.backend": backend, "finetune.batches": names})
    if cancel is not None:
        from parallel_r1.finetune.openai_ft import cancel_job

        job = cancel_job(cfg, cancel)
        console.print(f"finetune: {job.name} ({job.job_id}) is {job.status}", markup=False)
        return
    jobs = run_finetune(cfg, monolithic=monolithic, with_baseline=with_baseline, force=force)
    if cfg.finetune.backend == "ray" and exit_code(jobs) == 1:
        raise typer.Exit(1)


@app.command("parallel-sft")
@user_errors
def parallel_sft(
    branches: Annotated[int | None, typer.Option(help="Paths per <Parallel> block (default: parallel.branches).")
                        ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild the dataset, retrain and re-evaluate.")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Parallel-R1 cold start: parallel dataset, SFT with the tags on Ray Train, merged model, validation before RL."""
    from parallel_r1.parallel_sft.stage import run_parallel_sft

    run_parallel_sft(_config(config, workdir, set_, **{"parallel.branches": branches}), force=force)


@app.command()
@user_errors
def watch(
    interval: Annotated[float | None, typer.Option(help="Seconds between refreshes.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """A live table of every fine-tuning job until all have ended; exit 1 if any failed."""
    from parallel_r1.finetune import watch as jobs

    raise typer.Exit(jobs.exit_code(jobs.watch(_config(config, workdir, set_), interval)))


@app.command()
@user_errors
def check(config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None) -> None:
    """Print the fine-tuning jobs once (exit 1 if any failed, 3 if some are still running)."""
    from parallel_r1.finetune import watch as jobs

    raise typer.Exit(jobs.exit_code(jobs.check(_config(config, workdir, set_, log_file=False))))


@app.command()
@user_errors
def compare(
    models: Annotated[list[str] | None, typer.Argument(help="Models to compare with the base (default: all).")] = None,
    test_on: Annotated[list[str] | None, typer.Option("--test-on", help="Slice(s) to test on (repeatable; "
                                                                           "default: all).")] = None,
    engine: Annotated[str | None, typer.Option(help="Inference engine: auto | hf | vllm.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Every model against the base on held-out slices: CIs, success criteria, routing table, report."""
    from parallel_r1.compare.stage import run_compare

    run_compare(_config(config, workdir, set_, **{"inference.engine": engine}), models or None, test_on or None)


@app.command("tune")
@user_errors
def tune_cmd(
    specialist: Annotated[str | None, typer.Argument(help="Batch whose specialist is swept (default: tune.specialist).")
                          ] = None,
    batch_sizes: Annotated[str | None, typer.Option(help="Comma-separated training-set sizes, e.g. 30,50,100.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Ray Tune sweep of batch size x learning rate x LoRA rank for one specialist; results in <workdir>/tune/."""
    from parallel_r1.tune.stage import run_tune

    sizes = [s.strip() for s in batch_sizes.split(",")] if batch_sizes else None
    run_tune(_config(config, workdir, set_, **{"tune.specialist": specialist, "tune.batch_sizes": sizes}))


@app.command("rl")
@user_errors
def rl_cmd(
    model: Annotated[Path | None, typer.Option(help="Policy to start from (default: <workdir>/parallel/sft/model).")
                     ] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", "--steps", help="GRPO steps in total (default: "
                                                  "rl.max_steps); resumes up to it.")] = None,
    rollout_backend: Annotated[str | None, typer.Option("--rollout-backend", "--rollouts",
                                                        help="Rollout backend: auto | vllm | hf.")] = None,
    force: Annotated[bool, typer.Option(help="Start even from a model whose parallel-SFT validation (eval.json) "
                                             "failed or is missing (with a warning).")] = False,
    restart: Annotated[bool, typer.Option(help="Start over (discarding its checkpoints and metrics) when the start "
                                               "model or the rl settings changed since the recorded run.")] = False,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """GRPO on the parallel-SFT model (Ray Train + TRL), easy -> medium -> hard; metrics in <workdir>/parallel/rl/."""
    from parallel_r1.rl.stage import run_rl

    cfg = _config(config, workdir, set_, **{"rl.max_steps": max_steps, "rl.rollout_backend": rollout_backend})
    run_rl(cfg, model, force=force, restart=restart)


@app.command("serve")
@user_errors
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: serve.port).")] = None,
    backend: Annotated[str | None, typer.Option(help="Model backend: hf | vllm.")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """Serve the specialists behind the OpenAI-compatible ensemble router (Ray Serve) until Ctrl-C."""
    from parallel_r1.serve.stage import serve_until_interrupted

    serve_until_interrupted(_config(config, workdir, set_, **{
        "serve.host": host, "serve.port": port, "serve.backend": backend}))


@app.command("llm-server")
@user_errors
def llm_server_cmd(
    model: Annotated[str | None, typer.Option(help="Model folder to serve (default: llm_server.model, else "
                                                   "<workdir>/models/base).")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (default: llm_server.port; 0: a free one).")] = None,
    config: ConfigOpt = None, workdir: WorkdirOpt = None, set_: SetOpt = None,
) -> None:
    """vLLM's OpenAI-compatible server on a model of the run directory, until Ctrl-C; prints its base_url."""
    from parallel_r1.llm_server import serve_until_interrupted

    serve_until_interrupted(_config(config, workdir, set_, **{"llm_server.model": model, "llm_server.port": port}))


from parallel_r1.cli import (  # noqa: E402, F401 - registers cards, kb, gate, rollback, models, monitor, next last
    cards,
    kb,
    monitor,
    registry,
    rounds,
)
