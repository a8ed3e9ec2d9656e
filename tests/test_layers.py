"""The layers of the package import downwards only, checked on the source (every
import statement, those inside functions too): a module may import its own layer
and the layers below it, never one above."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Bottom to top. A module belongs to the first layer one of whose prefixes it starts with.
LAYERS = (
    ("foundation", ("bench.errors", "bench.units", "bench.columns", "bench.progress", "bench.parallel",
                    "bench.store", "bench.artifacts", "bench.manifest", "bench.metrics", "bench.terminal")),
    ("data", ("bench.data",)),
    ("oracles", ("bench.oracles",)),
    ("tasks", ("bench.tasks", "bench.baselines", "bench.build", "bench.cards")),
    ("reports", ("bench.reports",)),
    ("registry", ("bench.registry",)),
    ("runners", ("bench.runner", "bench.analyses")),
    ("consumers", ("bench.leaderboard", "bench.check", "bench.gate", "bench.perf", "bench.gpu_check",
                   "bench.asv_suite")),
    ("cli", ("bench.cli",)),
)


def layer_of(module: str) -> int | None:
    """Index of ``module``'s layer; None for the package itself (``bench``: its version)."""
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) of every absolute import in ``path``; ``from bench
    import metrics`` counts as ``bench.metrics``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, f"{node.module}.{alias.name}" if node.module in ("bench", "edm_core") else
                       node.module) for alias in node.names]
    return found


SOURCES = sorted((ROOT / "bench").rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[module_name(p) for p in SOURCES])
def test_bench_modules_import_their_layer_or_below(path):
    own = layer_of(module_name(path))
    upward = [f"line {line}: {name} ({LAYERS[layer_of(name)][0]})" for line, name in imports(path)
              if name.startswith("bench") and layer_of(name) is not None and own is not None
              and layer_of(name) > own]
    assert not upward, f"{module_name(path)} ({LAYERS[own][0]}) imports upwards: {upward}"


def test_every_bench_module_has_a_layer():
    assert [module_name(p) for p in SOURCES if layer_of(module_name(p)) is None] == ["bench"]


@pytest.mark.parametrize("package, forbidden", [("edm_core", ("bench",)), ("kernels", ("bench", "edm_core"))])
def test_the_model_core_and_the_kernels_never_import_the_harness(package, forbidden):
    bad = [f"{p.relative_to(ROOT)}:{line}: {name}" for p in sorted((ROOT / package).rglob("*.py"))
           for line, name in imports(p) if name.split(".")[0] in forbidden]
    assert not bad, bad


def test_the_check_sees_an_upward_import(tmp_path):
    """The data layer importing the oracles (the builder's old place) would be caught."""
    assert layer_of("bench.oracles.base") > layer_of("bench.data.readers")
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from bench.oracles import get_oracle\n")
    assert imports(probe) == [(2, "bench.oracles")]
