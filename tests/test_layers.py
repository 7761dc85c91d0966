"""Imports point down only: every import in the package (those inside functions too) goes to a lower layer, or to
one of the same-layer packages listed below; and no module is over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "parallel_r1"
MAX_LINES = 400

# Each package (a top-level module by its stem) and its layer: 0 is the foundation, 8 the entry points.
LAYERS = {
    **dict.fromkeys(["errors", "console", "config", "recipe", "paths", "data", "ray_runtime", "jobs", "watchdog"], 0),
    **dict.fromkeys(["llm_client", "llm_server", "grade", "profiles", "inference", "registry"], 1),
    **dict.fromkeys(["discover", "transcripts", "batch", "base_model", "kb"], 2),
    "finetune": 3,
    **dict.fromkeys(["compare", "gate"], 4),
    **dict.fromkeys(["tune", "parallel_sft", "monitor", "rounds"], 5),
    **dict.fromkeys(["rl", "scoreboard"], 6),
    "serve": 7,
    **dict.fromkeys(["pipeline", "cli", "__init__"], 8),
}

# The only imports allowed between two packages of one layer (importer, imported).
SAME_LAYER = {
    # the foundation: the config reports errors; data, paths and the Ray connection read config types; jobs reads
    # its YAML specs through config's reader
    ("config", "errors"), ("data", "errors"), ("data", "config"), ("paths", "config"), ("ray_runtime", "config"),
    ("jobs", "errors"), ("jobs", "config"),
    # the grader's LLM judge and the profile reader's LLM reader ask through the one OpenAI-compatible client
    ("grade", "llm_client"), ("profiles", "llm_client"),
    # the embedded base model is pre-trained on dialogues of the procedural simulator
    ("base_model", "discover"),
    # discovery's tutor is grounded with the knowledge base's one retrieval (kb.ground: [discover])
    ("discover", "kb"),
    # the gate reads compare's scored replies
    ("gate", "compare"),
    # `parallel-r1 run` runs the pipeline
    ("cli", "pipeline"),
}


def package_of(module: str) -> str:
    """`parallel_r1.a.b` -> "a"; `parallel_r1` itself -> "__init__"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of the package in one file, relative ones resolved."""
    name = module_name(path)
    here = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from parallel_r1 import jobs` imports the module parallel_r1.jobs, not the package's __init__
            found += [(node.lineno, f"{target}.{a.name}" if is_module(f"{target}.{a.name}") else target)
                      for a in node.names]
    return [(line, m) for line, m in found if m == "parallel_r1" or m.startswith("parallel_r1.")]


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_has_a_layer():
    packages = {package_of(module_name(p)) if p.parent != PACKAGE else p.stem for p in modules()}
    assert packages - set(LAYERS) == set(), "packages missing from LAYERS"


def test_imports_point_down():
    wrong = []
    for path in modules():
        src = package_of(module_name(path)) if path.parent != PACKAGE else path.stem
        for line, target in imported(path):
            dst = package_of(target)
            if dst == src:
                continue
            if LAYERS[dst] > LAYERS[src]:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} (layer {LAYERS[src]}) imports {target} "
                             f"(layer {LAYERS[dst]})")
            elif LAYERS[dst] == LAYERS[src] and (src, dst) not in SAME_LAYER:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {src} imports {target} of the same layer "
                             f"{LAYERS[src]}, not a listed arrow")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_module_is_over_400_lines():
    long = [f"{p.relative_to(PACKAGE.parent)}: {n} lines" for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, "modules over 400 lines:\n" + "\n".join(long)
