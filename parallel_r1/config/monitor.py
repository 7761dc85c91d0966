"""The `monitor` section: the signals computed from served traffic and the thresholds that queue retraining."""

from __future__ import annotations

from pydantic import Field, model_validator

from parallel_r1.config.base import ConfigError, _Section

ACTIONS = ("guardrail_sft", "curriculum", "rl", "parallel_sft")


def _default_commands() -> dict[str, list[str]]:
    return {
        "parallel_sft": ["parallel-sft", "compare", "gate"],
        "rl": ["rl", "compare", "gate"],
        "curriculum": ["run", "parallel-sft", "rl --restart", "compare", "gate"],
        "guardrail_sft": ["guardrail {model}", "finetune --batches {model}", "compare", "gate {model}"],
    }


class MonitorConfig(_Section):
    window: int = Field(20, ge=2, description="Online evaluations (graded replies) of one model version per window: "
                                              "the latest window gives the score, spread and failure rate, the "
                                              "version's first window is its baseline for drift.")
    min_evaluations: int = Field(5, ge=1, description="Evaluations a version needs in its latest window before "
                                                      "its spread, failure rate and drift can fire a trigger.")
    score_floor: float = Field(0.82, ge=0, le=1, description="Weighted rubric score under which an evaluation "
                                                             "counts as low.")
    consecutive_low: int = Field(5, ge=1, description="That many low evaluations in a row queue the parallel SFT.")
    max_std: float = Field(0.12, ge=0, description="A latest-window score standard deviation above this queues RL.")
    failure_below: float = Field(0.5, ge=0, le=1, description="An evaluation scored under this, or one that "
                                                              "recorded an error, is a failure.")
    max_failure_rate: float = Field(0.08, ge=0, le=1, description="A latest-window failure rate above this queues "
                                                                  "RL.")
    max_drop: float = Field(0.07, gt=0, le=1, description="A latest-window mean this much (relative) under the "
                                                          "baseline window's queues the full curriculum.")
    max_compliance_failures: int = Field(0, ge=0, description="Latest-window replies with a dismissive tone or an "
                                                              "answer dump tolerated; more queue a guardrail SFT.")
    probe_url: str | None = Field(None, description="Root URL of the running Serve app (http://HOST:8000): each "
                                                    "pass first sends it held-out prefixes for every served model "
                                                    "and logs their grades as evaluations; None: served traffic "
                                                    "only.")
    probe_prompts: int = Field(8, ge=1, description="Held-out prefixes (compare's eval/heldout.json) sent per "
                                                    "served model and pass.")
    probe_max_tokens: int = Field(80, ge=1, description="Token budget of a probe's reply.")
    cooldown_s: float = Field(3600.0, ge=0, description="Seconds after a trigger before the same model and action "
                                                        "may be queued again.")
    interval_s: float = Field(300.0, gt=0, description="`monitor --watch`: seconds between evaluations.")
    job_address: str | None = Field(None, description="Ray job server (dashboard URL, http://HEAD:8265) the "
                                                      "actions are submitted to; None: $RAY_API_SERVER_ADDRESS, "
                                                      "else $RAY_ADDRESS.")
    job_config: str | None = Field(None, description="Config file the queued stages run with; None: the "
                                                     "monitor's own config, written to monitor/job_config.yaml.")
    runtime_env: dict = Field(default_factory=dict, description="Ray runtime_env of the submitted jobs "
                                                                "(working_dir, env_vars, pip).")
    commands: dict[str, list[str]] = Field(default_factory=_default_commands,
                                           description="The parallel-r1 commands each action runs, in order, "
                                                       "in one Ray job ({model}: the triggering model); an "
                                                       "action not listed keeps its default.")

    @model_validator(mode="after")
    def _consistent(self) -> MonitorConfig:
        if self.min_evaluations > self.window:
            raise ConfigError(f"monitor.min_evaluations ({self.min_evaluations}) exceeds monitor.window "
                              f"({self.window}): no window could ever fire")
        if self.consecutive_low > self.window:
            raise ConfigError(f"monitor.consecutive_low ({self.consecutive_low}) exceeds monitor.window "
                              f"({self.window}): the trigger could never be seen in one window")
        if self.failure_below > self.score_floor:
            raise ConfigError(f"monitor.failure_below ({self.failure_below}) is above monitor.score_floor "
                              f"({self.score_floor}): a failure must also be a low score")
        unknown = sorted(set(self.commands) - set(ACTIONS))
        empty = [a for a, commands in self.commands.items() if not commands]
        if unknown or empty:
            what = f"unknown action(s) {unknown}" if unknown else f"no command for {empty}"
            raise ConfigError(f"monitor.commands: {what} (actions: {', '.join(ACTIONS)})")
        object.__setattr__(self, "commands", {**_default_commands(), **self.commands})
        return self
