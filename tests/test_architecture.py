"""The layer order of README.md's "Layout", read from the source with `ast` (function-local imports included).

    errors, files, locks, text_template, token_layout, choices -> config, pretrain_mix -> data | models
    -> assets | training -> recipe -> evaluation | ui | cached_latents -> modes -> cli, the package's API (latentbridge/__init__.py)

and inside data/: batch, build_progress, corpus -> data_specs -> rows -> sources | cache -> encoding -> loader.

A module imports from its own layer or the ones below it, never from a peer beside it (data and models
never import each other) or above it; mode modules import nothing from each other. A function-local import
is kept only where it keeps torch out of a light path (`import latentbridge`, `--help`, `--mode config`,
and modules those import), and says why in a comment.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

PACKAGE = "latentbridge"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

LAYERS = (  # bottom to top; the groups inside one layer are peers that never import each other
    ("base",),
    ("config",),
    ("data", "models"),
    ("assets", "training"),
    ("recipe",),
    ("evaluation", "ui", "cached_latents"),
    ("modes",),
    ("cli", "__init__"),
)
GROUP_OF = {"backbones": "assets", "choices": "base", "errors": "base", "files": "base", "locks": "base", "runs": "base", "text_template": "base",
            "token_layout": "base",
            "config_sources": "config", "config_docs": "config", "pretrain_mix": "config"}
# Groups whose modules stay free of torch at import: what `import latentbridge`, `--help` and `--mode config`
# load, and the recipe, which every layer above it may import cheaply.
LIGHT_ENTRY_POINTS = (PACKAGE, f"{PACKAGE}.cli", f"{PACKAGE}.modes.show_config", f"{PACKAGE}.config_docs",
                      f"{PACKAGE}.recipe")
# Packages that take seconds to import (they import torch, or pyarrow for datasets): what a light path
# must not load at import time, and the only thing a function-local import may be for.
HEAVY = ("torch", "transformers", "accelerate", "datasets", "safetensors.torch", "peft", "flash_attn", "matplotlib")
# Light-path modules may also defer these, with the reason.
DEFERRED_WITH_REASON = {
    "yaml": "only config files, --format yaml and --save-config need it; --help stays within its budget",
    "rich": "only the config table and help on a terminal draw with it (~30 ms); `--format json` skips it",
    "huggingface_hub": "snapshot_download loads an HTTP stack (0.4 s); only hub model names need it",
    "pyarrow": "pyarrow.parquet takes ~0.3 s to import; only parquet data files need it",
}
# Imports that must stay inside a function whatever the module: probes and users of optional packages, and
# peft, which only runs with LoRA should pay for. Keyed by (module, top-level package).
PROBES = {("models.backends", "flash_attn"): "flash-attn is optional and a broken build raises anything",
          ("models.lora", "peft"): "2.4 s to import on top of transformers (measured); only LoRA runs need it",
          ("training.tracking", "mlflow"): "an optional tracker (requirements-trackers.txt), asked for by report_to"}
CONFIG_READERS = ("config", "recipe", "evaluation", "cached_latents", "modes", "cli", "__init__")  # may import Config
DATA_LAYERS = (  # inside data/ (README.md, Layout), bottom to top; groups of one layer never import each other
    ("batch", "build_progress", "corpus"),
    ("data_specs",),
    ("rows",),
    ("sources", "cache"),
    ("encoding",),
    ("loader",),
)


@dataclass(frozen=True)
class Import:
    module: str            # the importing module, dotted
    target: str            # what it imports, dotted (a submodule when `from X import submodule`)
    names: tuple[str, ...]  # the names of `from X import a, b`
    line: int
    kind: str              # "top", "local" (inside a function), "type" (under TYPE_CHECKING), "dynamic" (by name)
    commented: bool        # a comment on its line or on the line above its block of imports

    @property
    def at_import_time(self) -> bool:
        return self.kind == "top"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def group(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else "__init__"
    return GROUP_OF.get(name, name)


def rank(module: str) -> int:
    return next(i for i, groups in enumerate(LAYERS) if group(module) in groups)


def _resolve(module: str, node: ast.ImportFrom) -> list[str]:
    base = node.module or ""
    if node.level:
        package = module.split(".")[: -node.level + (1 if modules()[module].name == "__init__.py" else 0)]
        base = ".".join([*package, base] if base else package)
    named = [f"{base}.{alias.name}" for alias in node.names]
    return [n for n in named if n in modules()] or [base]


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, lines: list[str]) -> None:
        self.module, self.lines = module, lines
        self.depth, self.type_only = 0, False
        self.found: list[Import] = []

    def _commented(self, line: int) -> bool:
        above = line - 1
        while above >= 1 and self.lines[above - 1].strip().startswith(("import ", "from ")):
            above -= 1  # the block of imports this one belongs to
        return "#" in self.lines[line - 1] or (above >= 1 and self.lines[above - 1].strip().startswith("#"))

    def _add(self, node: ast.stmt, targets: list[str], names: tuple[str, ...] = ()) -> None:
        kind = "type" if self.type_only else "local" if self.depth else "top"
        for target in targets:
            self.found.append(Import(self.module, target, names, node.lineno, kind, self._commented(node.lineno)))

    def visit_Import(self, node: ast.Import) -> None:
        self._add(node, [alias.name for alias in node.names])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module != "__future__":
            self._add(node, _resolve(self.module, node), tuple(alias.name for alias in node.names))

    def visit_Constant(self, node: ast.Constant) -> None:  # importlib.import_module("latentbridge.x") by name
        if isinstance(node.value, str) and "." in node.value and node.value in modules() and node.value != self.module:
            self.found.append(Import(self.module, node.value, (), node.lineno, "dynamic", True))

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            self.type_only = True
            self.generic_visit(node)
            self.type_only = False
        else:
            self.generic_visit(node)

    def _function(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function


@cache
def imports(module: str) -> tuple[Import, ...]:
    text = modules()[module].read_text(encoding="utf-8")
    collector = _Collector(module, text.splitlines())
    collector.visit(ast.parse(text))
    return tuple(collector.found)


def internal(target: str) -> bool:
    return target == PACKAGE or target.startswith(PACKAGE + ".")


def is_heavy_package(target: str) -> bool:
    return any(target == h or target.startswith(h + ".") for h in HEAVY)


@cache
def import_time_closure(module: str) -> frozenset[str]:
    """Every module (internal and external) that importing `module` loads through top-level imports."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for imp in imports(current):
            if not imp.at_import_time or imp.target in seen:
                continue
            seen.add(imp.target)
            if internal(imp.target) and imp.target in modules():
                todo.append(imp.target)
            parent = imp.target.rsplit(".", 1)[0]  # importing a.b.c runs a.b's __init__ too
            while internal(parent) and parent in modules() and parent not in seen:
                seen.add(parent)
                todo.append(parent)
                parent = parent.rsplit(".", 1)[0]
    return frozenset(seen)


def is_heavy(target: str) -> bool:
    if internal(target):
        return target in modules() and any(is_heavy_package(m) for m in import_time_closure(target))
    return is_heavy_package(target)


@cache
def light_modules() -> frozenset[str]:
    closure = {m for entry in LIGHT_ENTRY_POINTS for m in import_time_closure(entry) | {entry}}
    return frozenset(m for m in closure if m in modules())


def all_imports() -> list[Import]:
    return [imp for module in modules() for imp in imports(module)]


def test_every_group_has_a_layer():
    assert {group(m) for m in modules()} <= {g for layer in LAYERS for g in layer}


def test_imports_point_down_the_layers():
    wrong = [f"{i.module}:{i.line} imports {i.target}" for i in all_imports()
             if internal(i.target) and i.target in modules() and group(i.target) != group(i.module)
             and rank(i.target) >= rank(i.module)]
    assert not wrong, "imports against the layer order (README.md, Layout):\n" + "\n".join(wrong)


def data_group(module: str) -> str:
    """`latentbridge.data.cache.reader` -> "cache"; "" for the data package itself and modules outside it."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "data" else ""


def data_rank(module: str) -> int:
    return next(i for i, groups in enumerate(DATA_LAYERS) if data_group(module) in groups)


def test_every_data_module_has_a_data_layer():
    assert {data_group(m) for m in modules()} - {""} <= {g for layer in DATA_LAYERS for g in layer}


def test_data_modules_import_down_the_data_order():
    """Specs and batch keys first, so no circle appears; sources and cache side by side; encoding over both."""
    wrong = [f"{i.module}:{i.line} imports {i.target}" for i in all_imports()
             if data_group(i.module) and i.target in modules() and data_group(i.target)
             and data_group(i.target) != data_group(i.module) and data_rank(i.target) >= data_rank(i.module)]
    assert not wrong, "imports against data/'s order (README.md, Layout):\n" + "\n".join(wrong)


def test_data_module_names_are_not_used_elsewhere_in_the_package():
    """A reader who opens `data/<name>` never meant a module of the same name in another folder."""
    names = [m.rsplit(".", 1)[-1] for m in modules()]
    shared = sorted({m for m in modules() if data_group(m) and names.count(m.rsplit(".", 1)[-1]) > 1})
    assert not shared, f"data modules named like another module of {PACKAGE}: {shared}"


def test_mode_modules_import_no_other_mode():
    wrong = [f"{i.module}:{i.line} imports {i.target}" for i in all_imports()
             if group(i.module) == "modes" and i.module != f"{PACKAGE}.modes"
             and i.target.startswith(f"{PACKAGE}.modes.")]
    assert not wrong, "\n".join(wrong)


def test_only_orchestration_imports_the_config_class():
    wrong = [f"{i.module}:{i.line}" for i in all_imports() if i.target == f"{PACKAGE}.config"
             and "Config" in i.names and group(i.module) not in CONFIG_READERS]
    assert not wrong, "models, data, training, ui take specs or explicit values, not the Config:\n" + "\n".join(wrong)


def test_models_and_data_do_not_import_the_config_module():
    wrong = [f"{i.module}:{i.line}" for i in all_imports()
             if group(i.module) in ("models", "data") and i.target.startswith(f"{PACKAGE}.config")]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("entry", LIGHT_ENTRY_POINTS)
def test_light_entry_points_import_no_heavy_package(entry):
    heavy = sorted(m for m in import_time_closure(entry) if is_heavy_package(m))
    assert not heavy, f"importing {entry} loads {heavy}"


def test_no_import_cycles_at_import_time():
    graph = {m: {i.target for i in imports(m) if i.at_import_time and i.target in modules()}
             for m in modules()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path
                                     else f"import cycle through {nxt}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def test_function_local_imports_only_keep_torch_out_of_light_paths():
    """A function-local import must sit in a light-path module and defer a heavy one (or one with a reason
    in DEFERRED_WITH_REASON), with a comment saying why; anything else belongs at the top of its file."""
    wrong = []
    for i in all_imports():
        if i.kind != "local" or (i.module.removeprefix(PACKAGE + "."), i.target.split(".")[0]) in PROBES:
            continue
        deferred = is_heavy(i.target) or i.target.split(".")[0] in DEFERRED_WITH_REASON
        if i.module not in light_modules():
            wrong.append(f"{i.module}:{i.line} {i.target}: {i.module} is not on a light path; import at the top")
        elif not deferred:
            wrong.append(f"{i.module}:{i.line} {i.target}: light to import; import at the top")
        elif not i.commented:
            wrong.append(f"{i.module}:{i.line} {i.target}: say in a comment why it is deferred")
    assert not wrong, "\n".join(wrong)


def test_the_checks_see_what_they_check():
    """Guard the test itself: it finds the known arrows, local imports and light modules."""
    trainer = {i.target for i in imports(f"{PACKAGE}.training.trainer")}
    assert f"{PACKAGE}.training.checkpoint" in trainer and "torch" in trainer
    assert is_heavy(f"{PACKAGE}.training.trainer") and not is_heavy(f"{PACKAGE}.config")
    assert {f"{PACKAGE}.config", f"{PACKAGE}.modes"} <= light_modules()
    assert f"{PACKAGE}.training.trainer" not in light_modules()
    assert any(i.kind == "local" for i in imports(f"{PACKAGE}.recipe"))
    assert any(i.kind == "dynamic" for i in imports(f"{PACKAGE}.modes"))
    assert rank(f"{PACKAGE}.data.cache") == rank(f"{PACKAGE}.models.bridge") < rank(f"{PACKAGE}.training.stages")
    encoding_build = {i.target for i in imports(f"{PACKAGE}.data.encoding.build")}
    assert f"{PACKAGE}.data.cache" in encoding_build and data_rank(f"{PACKAGE}.data.cache.reader") == data_rank(
        f"{PACKAGE}.data.sources.mix") < data_rank(f"{PACKAGE}.data.encoding.build")
