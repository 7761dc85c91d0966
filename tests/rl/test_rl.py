"""`parallel-r1 rl`: GRPO on Ray Train with HF rollouts end to end, resume without replayed steps, a stop criterion
recorded and honoured, vLLM colocated rollouts with working weight sync, curriculum prompts, clear errors, the refusal
of a policy without a passed parallel-SFT validation (and `--force`), and the critic reaching the workers."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from parallel_r1.compare.parallel_replies import weights_digest
from parallel_r1.config import ConfigError, load_config
from parallel_r1.config.workers import GRPOJob
from parallel_r1.errors import UserFacingError
from parallel_r1.paths import RunPaths
from parallel_r1.rl.metrics import ADHERENCE, REWARD_NAMES, TIMINGS, MetricsLog

SMALL = {"rl.prompts_per_step": 2, "rl.num_generations": 4, "rl.explore.max_tokens": 24, "rl.verify.max_tokens": 24,
         "rl.prompt_pool": 6, "rl.learning_rate": 1e-4, "rl.cpus_per_worker": 1, "rl.save_steps": 1}


def _cfg(workdir: Path, **overrides):
    return load_config(overrides={"workdir": str(workdir), **SMALL, **overrides})


def _job(workdir: Path, model: Path, backend: str, **overrides) -> GRPOJob:
    cfg = _cfg(workdir, **overrides)
    return GRPOJob(rl=cfg.rl, model=str(model), backend=backend, max_blocks=3,
                   metrics_file=str(workdir / "metrics.jsonl"), state_file=str(workdir / "state.json"), torch_threads=1)


def _assert_complete(record: dict) -> None:
    for key in (*REWARD_NAMES, "reward", ADHERENCE, *TIMINGS, "tier", "phase", "temperature", "branches"):
        assert record.get(key) is not None, (key, record)
    assert record["completion_tokens"] > 0 and record["generation_s"] > 0


@pytest.mark.slow
def test_hf_rollouts_on_ray_train_write_every_component_and_resume_without_replaying(ray_session, tmp_path,
                                                                                     tagged_model):
    from parallel_r1.rl.stage import run_rl

    first = run_rl(_cfg(tmp_path, **{"rl.max_steps": 2, "rl.rollout_backend": "hf"}), tagged_model, force=True)
    rl = tmp_path / "parallel" / "rl"
    rows = MetricsLog(rl / "metrics.jsonl").read()
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        _assert_complete(r)
        assert r["tier"] == "easy" and r["weights"]["rubric"] == 1.0
        assert 0.0 <= r["rubric"] <= 1.0 and r["rubric"] > 0  # the rubric grades real text
    assert (first.start_step, first.end_step, first.backend) == (0, 2, "hf")
    assert (rl / "metrics.png").stat().st_size > 0
    assert (rl / "model" / "model.safetensors").exists() and not (rl / "model" / "optimizer.pt").exists()
    assert any((rl / "checkpoints" / "grpo").rglob("curriculum.json"))

    # A longer rerun resumes at step 3: nothing is replayed, nothing duplicated, the curriculum state carries on.
    second = run_rl(_cfg(tmp_path, **{"rl.max_steps": 4, "rl.rollout_backend": "hf"}), tagged_model, force=True)
    rows = MetricsLog(rl / "metrics.jsonl").read()
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (second.start_step, second.end_step) == (2, 4)
    state = json.loads((rl / "state.json").read_text())
    assert state["step"] == 4 and state["curriculum"]["last_step"] == 4 and state["curriculum"]["steps_on_tier"] == 4

    # The run recorded what it trained from: the same model elsewhere, validated, with a changed learning rate is
    # not resumed.
    import shutil

    moved = shutil.copytree(tagged_model, tmp_path / "moved" / "model")
    _write_eval(moved, RISES)
    with pytest.raises(UserFacingError, match=r"other settings \(rl.learning_rate 0.0001 -> 0.001\)"):
        run_rl(_cfg(tmp_path, **{"rl.max_steps": 6, "rl.learning_rate": 1e-3}), moved)


def test_a_resumed_run_drops_the_metrics_of_steps_after_its_checkpoint(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (1, 2, 3):
        log.append({"step": step})
    assert log.keep_until(2) == 1
    log.append({"step": 3, "again": True})
    assert log.read() == [{"step": 1}, {"step": 2}, {"step": 3, "again": True}]


def test_a_torn_last_metrics_line_is_dropped_before_the_resumed_run_appends(tmp_path):
    """A run killed while appending leaves half a line: the resume must not append onto it."""
    log = MetricsLog(tmp_path / "m.jsonl")
    for step in (1, 2):
        log.append({"step": step})
    with open(log.path, "a") as f:
        f.write('{"step": 3, "rew')
    assert log.keep_until(2) == 0
    log.append({"step": 3, "again": True})
    assert log.read() == [{"step": 1}, {"step": 2}, {"step": 3, "again": True}]


def test_stop_criterion_ends_the_run_is_recorded_and_a_rerun_does_not_restart(tmp_path, tagged_model):
    from parallel_r1.rl.grpo_worker import run_grpo_locally
    from parallel_r1.rl.stage import RLStage

    # Any reward variance is "collapsed" below a threshold of 10: the first closed window (1 step) stops the run.
    config = _job(tmp_path, tagged_model, "hf", **{"rl.max_steps": 5, "rl.stop.eval_window": 1,
                                                             "rl.stop.min_variance": 10.0})
    records = run_grpo_locally(config)
    assert [r["step"] for r in records] == [1]
    assert records[0]["stop_reason"] == "low_variance"
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["stopped"]["code"] == "low_variance" and state["stopped"]["step"] == 1
    assert "below 10.0" in state["stopped"]["message"]

    rl = tmp_path / "parallel" / "rl"
    rl.mkdir(parents=True)
    (rl / "state.json").write_text((tmp_path / "state.json").read_text())
    stage = RLStage(_cfg(tmp_path, **{"rl.rollout_backend": "hf"}), tagged_model, force=True)
    stage.setup()
    assert stage.done is not None and "low_variance" in stage.done


def test_curriculum_prompts_follow_tier_and_branch_count(tagged_model):
    from transformers import AutoTokenizer

    from parallel_r1.data import get_card
    from parallel_r1.rl.prompts import CurriculumPrompts

    tok = AutoTokenizer.from_pretrained(tagged_model)

    def count(messages):
        return len(tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                           return_dict=True)["input_ids"])

    prompts = CurriculumPrompts(["easy", "hard"], 4, 0, 3, count, budget=480)
    easy, hard = prompts.row(1, "easy", 4), prompts.row(1, "hard", 2)
    assert get_card(easy["scenario_id"]).difficulty == "easy" and get_card(hard["scenario_id"]).difficulty == "hard"
    assert "write 4 different approaches" in easy["prompt"][0]["content"]
    assert "write 2 different approaches" in hard["prompt"][0]["content"]
    assert easy["prompt"][-1]["role"] == "user" and easy["tier"] == "easy"
    assert prompts.row(5, "easy", 4) == easy  # slots wrap around the pool, deterministically
    tight = CurriculumPrompts(["easy"], 2, 0, 3, count, budget=count(easy["prompt"][:1]) + 12)
    assert count(tight.row(0, "easy", 4)["prompt"]) <= count(easy["prompt"][:1]) + 12
    with pytest.raises(UserFacingError, match="rl.max_model_len"):
        CurriculumPrompts(["easy"], 2, 0, 3, count, budget=20).row(0, "easy", 4)


def test_reward_names_match_the_logged_reward_functions():
    from parallel_r1.rl.rewards import COMPONENTS, rewards_from_config

    combined = rewards_from_config(load_config().rl)
    assert tuple(REWARD_NAMES) == COMPONENTS
    assert {c: combined.components[c].__name__ for c in COMPONENTS} == REWARD_NAMES


def test_bad_config_and_missing_model_are_clear_errors(tmp_path, tiny_base_model, tagged_model):
    from typer.testing import CliRunner

    from parallel_r1.cli import app
    from parallel_r1.rl.stage import RLStage

    with pytest.raises(ConfigError, match="rl.vllm_server_url"):
        load_config(overrides={"rl.vllm_mode": "server"})
    with pytest.raises(ConfigError, match="rl.num_workers"):
        load_config(overrides={"rl.prompts_per_step": 3, "rl.num_generations": 3, "rl.num_workers": 2})
    with pytest.raises(ConfigError, match="rollout_backend"):
        load_config(overrides={"rl.rollout_backend": "tgi"})
    result = CliRunner().invoke(app, ["rl", "-w", str(tmp_path), "--rollout-backend", "hf"])
    assert result.exit_code == 2 and "parallel-r1 parallel-sft" in result.output
    with pytest.raises(UserFacingError, match="lacks the Parallel tags"):
        RLStage(_cfg(tmp_path), tiny_base_model).setup()
    with pytest.raises(UserFacingError, match="rl.explore.max_tokens"):
        RLStage(_cfg(tmp_path, **{"rl.explore.max_tokens": 600}), tagged_model).setup()


@pytest.mark.slow
def test_vllm_colocated_rollouts_train_and_the_engine_gets_the_updated_weights(tmp_path, tagged_model):

    from parallel_r1.rl.grpo_worker import build_trainer

    config = _job(tmp_path, tagged_model, "vllm", **{"rl.max_steps": 2})
    trainer = build_trainer(config, str(tmp_path / "out"), save=False)
    trainer.train()
    rows = MetricsLog(tmp_path / "metrics.jsonl").read()
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        _assert_complete(r)
        assert r["weight_sync_s"] > 0  # the engine was refreshed before each step's rollouts

    # A sync hands the engine whatever the trainer's model now is: its greedy continuation follows, token for token.
    assert_engine_follows_a_sync(trainer)


def assert_engine_follows_a_sync(trainer) -> None:
    """Perturb the trainer's model, sync: the colocated vLLM engine's greedy continuation is the trainer's own."""
    import torch
    from vllm import SamplingParams

    prompt = trainer.processing_class.apply_chat_template(
        trainer.prompts.row(0, "easy", 4)["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True,
    )["input_ids"]
    greedy = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)

    def engine() -> list[int]:
        out = trainer.vllm_generation.llm.generate([{"prompt_token_ids": prompt}], greedy, use_tqdm=False)
        return list(out[0].outputs[0].token_ids)

    before = engine()
    trainer.model.eval()
    with torch.no_grad():
        for name, param in trainer.model.named_parameters():
            if "layers.1." in name:
                param.mul_(3.0)
        ids = torch.tensor([prompt], device=trainer.model.device)
        hf = trainer.model.generate(ids, max_new_tokens=12, min_new_tokens=12, do_sample=False,
                                    use_cache=True)[0, len(prompt):].tolist()
    assert hf != before  # the perturbation changes the continuation, so the check below can fail
    trainer.vllm_generation.sync_weights()
    assert engine() == hf


def _sft_output(workdir: Path, tagged_model: Path) -> Path:
    """The tagged model where `parallel-r1 parallel-sft` leaves its model: what `rl` starts from by default."""
    import shutil

    model = RunPaths(workdir).parallel_sft_model
    shutil.copytree(tagged_model, model)
    return model


def _write_eval(model: Path, sft_rubric: list[float], *, weights: str | None = None) -> Path:
    """The eval.json of a validation where the SFT'd model always writes the format and its rubric per held-out prefix
    is `sft_rubric` (the starting point's is 0.5 throughout)."""
    from parallel_r1.compare.parallel_replies import ModelEval, parallel_score
    from parallel_r1.data.io import atomic_write_json
    from parallel_r1.parallel_sft.check import SFT, START, check_uplift, evaluation_record

    def model_eval(name: str, adherence: float, rubric: list[float]) -> ModelEval:
        mean = sum(rubric) / len(rubric)
        return ModelEval(name, len(rubric), adherence, mean, parallel_score(adherence, mean, 0.5), 0.0, 0.0, {},
                         item_rubric={f"p{i}": r for i, r in enumerate(rubric)})

    results = {START: model_eval(START, 0.0, [0.5] * len(sft_rubric)), SFT: model_eval(SFT, 1.0, sft_rubric)}
    meta = {"weights": {SFT: weights or weights_digest(model)}}
    path = model.parent / "eval.json"
    atomic_write_json(path, evaluation_record(results, check_uplift(results[START], results[SFT], 0.05), meta))
    return path


RISES = [0.6, 0.62, 0.58, 0.61, 0.63, 0.6]
FALLS = [0.3, 0.32, 0.28, 0.31, 0.29, 0.3]  # a format-only uplift: the parallel score still rises by 60 %


def test_rl_refuses_a_policy_whose_parallel_sft_validation_failed_or_is_missing(tmp_path, tagged_model):
    from typer.testing import CliRunner

    from parallel_r1.cli import app

    model = _sft_output(tmp_path, tagged_model)
    eval_file = model.parent / "eval.json"
    command = ["rl", "-w", str(tmp_path), "--rollouts", "hf"]
    missing = CliRunner().invoke(app, command)
    assert missing.exit_code == 2 and f"{eval_file} not found" in missing.output, missing.output
    assert missing.output.count("error:") == 1 and "--force" in missing.output

    _write_eval(model, FALLS)
    record = json.loads(eval_file.read_text())
    assert record["checks"]["uplift"]["passed"] and not record["checks"]["rubric"]["passed"]
    failed = CliRunner().invoke(app, command)
    assert failed.exit_code == 2 and f"{eval_file}: the parallel-SFT validation failed" in failed.output
    assert "the rubric score may have fallen" in failed.output and failed.output.count("error:") == 1

    # --force starts anyway, saying why it should not (a stopped run: nothing to train, no Ray needed)
    RunPaths(tmp_path).rl.mkdir(parents=True)
    RunPaths(tmp_path).rl_state.write_text(json.dumps({"step": 1, "stopped": {"step": 1, "code": "plateau",
                                                                              "message": "flat"}}))
    forced = CliRunner().invoke(app, [*command, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "warning:" in forced.output and "the rubric score may have fallen" in forced.output


def test_rl_starts_from_a_validated_policy_only_with_the_weights_that_were_validated(tmp_path, tagged_model, capsys):
    from parallel_r1.rl.stage import NotValidatedError, RLStage

    model = _sft_output(tmp_path, tagged_model)
    cfg = _cfg(tmp_path, **{"rl.rollout_backend": "hf"})
    _write_eval(model, RISES)
    RLStage(cfg).setup()
    assert "warning" not in capsys.readouterr().out
    _write_eval(model, RISES, weights="another-model")
    with pytest.raises(NotValidatedError, match="evaluated other weights"):
        RLStage(cfg).setup()
    (model.parent / "eval.json").write_text(json.dumps({"passed": True, "message": "an eval.json of an older version"}))
    with pytest.raises(NotValidatedError, match="before the rubric check"):
        RLStage(cfg).setup()


def _other_model(tmp_path: Path, tagged_model: Path) -> Path:
    """The tagged model with other weights, validated like a parallel-SFT output."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "other" / "model"
    model = AutoModelForCausalLM.from_pretrained(tagged_model)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tagged_model).save_pretrained(out)
    _write_eval(out, RISES)
    return out


def test_a_changed_start_model_or_rl_config_is_refused_and_restart_starts_over(tmp_path, tagged_model):
    from typer.testing import CliRunner

    from parallel_r1.cli import app
    from parallel_r1.data.io import atomic_write_json
    from parallel_r1.rl.stage import RLStage
    from parallel_r1.rl.state import fingerprint

    model = _sft_output(tmp_path, tagged_model)
    _write_eval(model, RISES)
    other = _other_model(tmp_path, tagged_model)
    paths = RunPaths(tmp_path)
    # what a run of the default config from `model` leaves when a stop criterion ends it at step 3
    atomic_write_json(paths.rl / "fingerprint.json",
                      fingerprint(load_config(overrides={"workdir": str(tmp_path)}), model).model_dump(mode="json"))
    paths.rl_state.write_text(json.dumps({"step": 3, "stopped": {"step": 3, "code": "plateau", "message": "flat"}}))
    MetricsLog(paths.rl_metrics).append({"step": 3, "tier": "easy", "phase": "verify"})
    (paths.rl_checkpoints / "grpo" / "checkpoint_000003").mkdir(parents=True)
    command = ["rl", "-w", str(tmp_path), "--rollouts", "hf"]

    for extra, changed in ((["--model", str(other)], f"the start model ({model.resolve()} -> {other.resolve()}"),
                           (["--set", "rl.learning_rate=0.001"], "rl.learning_rate 1e-05 -> 0.001"),
                           (["--set", "parallel.max_blocks=5"], "parallel.max_blocks 3 -> 5")):
        refused = CliRunner().invoke(app, [*command, *extra])
        output = " ".join(refused.output.split())
        assert refused.exit_code == 2 and output.count("error:") == 1 and changed in output, refused.output
        assert "`parallel-r1 rl --restart` discards it" in output
    assert (paths.rl_checkpoints / "grpo" / "checkpoint_000003").is_dir() and paths.rl_state.exists()
    same = CliRunner().invoke(app, [*command, "--steps", "80"])  # how far to train is no change of the run
    assert same.exit_code == 0 and "stopped at step 3" in same.output, same.output

    stage = RLStage(load_config(overrides={"workdir": str(tmp_path), "rl.rollout_backend": "hf"}), other,
                    restart=True, force=True)
    stage.setup()
    assert not paths.rl.exists() and not list(paths.parallel.glob(".rl*"))  # checkpoints, state, metrics: gone
    assert (stage.start_step, stage.done) == (0, None)


def test_a_torn_state_file_is_one_line_naming_it_and_restart_starts_over(tmp_path, tagged_model):
    from typer.testing import CliRunner

    from parallel_r1.cli import app
    from parallel_r1.rl.stage import RLStage

    _write_eval(_sft_output(tmp_path, tagged_model), RISES)
    paths = RunPaths(tmp_path)
    paths.rl.mkdir(parents=True)
    paths.rl_state.write_text('{"step": 3, "stopped": {"st')
    torn = CliRunner().invoke(app, ["rl", "-w", str(tmp_path), "--rollouts", "hf"])
    output = " ".join(torn.output.split())
    assert torn.exit_code == 2 and output.count("error:") == 1, torn.output
    assert f"{paths.rl_state} is unreadable (truncated or not JSON" in output and "--restart" in output

    stage = RLStage(load_config(overrides={"workdir": str(tmp_path), "rl.rollout_backend": "hf"}), restart=True,
                    force=True)
    stage.setup()  # what the message says: --restart starts over
    assert not paths.rl.exists() and (stage.start_step, stage.done) == (0, None)


def test_the_worker_config_carries_the_critic_into_the_consistency_reward(tmp_path, tagged_model, monkeypatch):
    from parallel_r1.grade.fitted import FittedGraderError
    from parallel_r1.rl.grpo_worker import build_trainer
    from parallel_r1.rl.rewards import COMPONENTS
    from parallel_r1.rl.stage import RLStage
    from tests.rl.test_rl_critic import fit_critic

    monkeypatch.chdir(tmp_path)  # a relative workdir: Ray Train workers run elsewhere, the folder must be absolute
    with pytest.raises(FittedGraderError, match="grader fit"):
        RLStage(_cfg(Path("run"), **{"rl.critic": "fitted"}), tagged_model, force=True).setup()
    fitted = fit_critic(Path("run") / "grader" / "fitted")
    stage = RLStage(_cfg(Path("run"), **{"rl.critic": "fitted", "rl.rollout_backend": "hf"}), tagged_model,
                    force=True)
    stage.setup()
    job = pickle.loads(pickle.dumps(stage.job()))  # as a Ray Train worker receives it
    assert job.critic.grader == "fitted"
    assert job.critic.fitted_path == str(tmp_path.resolve() / "run" / "grader" / "fitted")
    trainer = build_trainer(job, str(tmp_path / "out"), save=False)
    consistency = trainer.reward_funcs[COMPONENTS.index("consistency")]
    assert consistency.critic.grader.digest == fitted.digest

    judge = RLStage(_cfg(Path("run"), **{"rl.critic": "llm", "grade.judge.base_url": "http://judge:8000/v1"}))
    assert judge.job().critic.grader == "llm"
    assert judge.job().critic.judge.base_url == "http://judge:8000/v1"
    assert RLStage(_cfg(Path("run"))).job().critic is None


def test_the_workers_know_the_card_files_the_driver_read(tmp_path, monkeypatch):
    """A Ray Train worker is another process: the job carries discover.card_dir (absolute), and the worker registers
    those cards before the rewards look a prompt's scenario up by id."""
    import subprocess
    import sys

    from parallel_r1.rl.stage import RLStage

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(repo)
    cfg = load_config(overrides={"workdir": str(tmp_path), "discover.card_dir": "scenarios"})
    job = RLStage(cfg).job()
    assert job.card_dir == str(repo / "scenarios")
    code = ("import pickle, sys; from parallel_r1.data.card_files import use_card_dir, load_card_dir; "
            "from parallel_r1.rl.rewards import _scenario; job = pickle.loads(sys.stdin.buffer.read()); "
            "ids = [c.id for c, _ in load_card_dir(job.card_dir)]; use_card_dir(job.card_dir); "
            "print(len(ids) if all(_scenario(i).id == i for i in ids) else 0)")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(job), capture_output=True, cwd=tmp_path,
                         check=True)
    assert int(out.stdout) >= 3, out  # the repository's trauma-informed cards, found by id in another process
