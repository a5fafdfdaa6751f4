"""Every Config field is read by the code it configures: a field nothing reads is a flag that does nothing.

The source under src/latentbridge (and main.py) is parsed, not run, so every branch counts. A field is
read when the code does one of:
  - `x.<field>` where `x` is a Config: a name annotated `Config` in the enclosing function(s) or at
    module level, or an attribute `.config` that some class declares as `config: Config`;
  - `getattr(x, "<field>")` on such an `x`;
  - `getattr(x, name)` with a computed name, in a module that spells `"<field>"` as a string (the
    tuples of field names that such loops walk: BEST_FIELDS, PRETRAIN_FIELDS, SAMPLING_FIELDS, ...);
  - `x.<method>(...)` / `x.<property>` of Config, when that method or property reads the field.
Not counted: the config machinery (config.py, config_docs.py, config_sources.py: they handle every field
alike), `to_dict()` and fingerprints of whole configs, and modules that only display or check fields
(`--mode config`, doctor). Fields read by a computed name (`getattr(c, f"{stage}_epochs")`) cannot be
resolved statically: they are allow-listed below with the reason, and the test checks that an f-string
`getattr` in the source can spell each of them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from latentbridge.config import STAGES, field_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "latentbridge"
CONFIG_MACHINERY = {"config.py", "config_docs.py", "config_sources.py"}
DISPLAY_ONLY = {"show_config.py", "doctor.py"}
CONFIG_ANNOTATION = re.compile(r"\bConfig\b")

PRETRAIN_SOURCE_CAPS = [f"{stage}_max_samples_{source}" for stage, source in [
    ("pretrain_middle", "wikitext"), ("pretrain_middle", "arxiv"), ("pretrain_middle", "english"),
    ("pretrain_adapter", "wikitext"), ("pretrain_adapter", "arxiv")]]
# field -> why it is read only through a computed name (checked: an f-string getattr can spell it)
READ_BY_COMPUTED_NAME = {
    **{f"{stage}_epochs": "Config.stage_epochs(stage) reads f'{stage}_epochs' (recipe.stage_budgets)"
       for stage in STAGES},
    **{f"{stage}_batch_size": "Config.stage_batch_size(stage) reads f'{stage}_batch_size' (stage_budgets)"
       for stage in STAGES},
    **{f"{stage}_max_samples": "Config.stage_max_samples(stage) reads f'{stage}_max_samples' (recipe stage caps)"
       for stage in STAGES},
    **{name: "recipe.py stage caps read f'{stage}_max_samples_{source}'"
       for name in PRETRAIN_SOURCE_CAPS},
}


@dataclass
class Reads:
    fields: set[str] = field(default_factory=set)          # read directly
    methods: set[str] = field(default_factory=set)         # Config methods/properties used
    patterns: set[str] = field(default_factory=set)        # regexes of f-string getattr names
    computed: bool = False                                 # getattr(config, <expression>) seen


def _is_config_annotation(node: ast.AST | None) -> bool:
    return node is not None and bool(CONFIG_ANNOTATION.search(ast.unparse(node)))


def _fstring_pattern(node: ast.JoinedStr) -> str:
    parts = [re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z0-9_]+" for v in node.values]
    return "".join(parts)


@cache
def config_attributes() -> frozenset[str]:
    """Attribute names that classes declare as `name: Config` (LoadedModel.config, ResolvedConfig.config)."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names |= {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                          and isinstance(s.target, ast.Name) and _is_config_annotation(s.annotation)}
    return frozenset(names)


class ConfigReads(ast.NodeVisitor):
    """Collects what one module reads from Config objects, tracking which names hold a Config per scope."""

    def __init__(self, config_members: set[str]) -> None:
        self.fields, self.members = set(field_names()), config_members
        self.scopes: list[set[str]] = [set()]
        self.reads = Reads()
        self.strings: set[str] = set()

    def _is_config(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return any(node.id in scope for scope in self.scopes)
        return isinstance(node, ast.Attribute) and node.attr in config_attributes()

    def visit_Module(self, node: ast.Module) -> None:
        self.scopes[0] |= {s.target.id for s in node.body if isinstance(s, ast.AnnAssign)
                           and isinstance(s.target, ast.Name) and _is_config_annotation(s.annotation)}
        self.generic_visit(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        names = {a.arg for a in args if _is_config_annotation(a.annotation)}
        names |= {s.target.id for s in ast.walk(node) if isinstance(s, ast.AnnAssign)
                  and isinstance(s.target, ast.Name) and _is_config_annotation(s.annotation)}
        self.scopes.append(names)
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load) and self._is_config(node.value):
            if node.attr in self.fields:
                self.reads.fields.add(node.attr)
            elif node.attr in self.members:
                self.reads.methods.add(node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and node.args and self._is_config(node.args[0]):
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value in self.fields:
                self.reads.fields.add(name.value)
            elif isinstance(name, ast.JoinedStr):
                self.reads.patterns.add(_fstring_pattern(name))
            else:
                self.reads.computed = True
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and node.value in self.fields:
            self.strings.add(node.value)


def module_reads(tree: ast.Module, config_members: set[str]) -> Reads:
    visitor = ConfigReads(config_members)
    visitor.visit(tree)
    if visitor.reads.computed:
        visitor.reads.fields |= visitor.strings
    return visitor.reads


@cache
def config_members() -> dict[str, Reads]:
    """Config's own methods and properties -> what each reads from `self`."""
    tree = ast.parse((PACKAGE / "config.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config")
    members = {}
    for method in (n for n in cls.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("__")):
        visitor = ConfigReads(set())
        visitor.scopes.append({"self"})
        for statement in method.body:
            visitor.visit(statement)
        members[method.name] = visitor.reads
    return members


@cache
def source_reads() -> Reads:
    """Everything the package (outside the config machinery and display-only modules) reads from a Config."""
    total = Reads()
    members = config_members()
    files = [p for p in PACKAGE.rglob("*.py") if p.name not in CONFIG_MACHINERY | DISPLAY_ONLY] + [ROOT / "main.py"]
    for path in files:
        reads = module_reads(ast.parse(path.read_text(encoding="utf-8")), set(members))
        total.fields |= reads.fields
        total.patterns |= reads.patterns
        for name in reads.methods:
            total.fields |= members[name].fields
            total.patterns |= members[name].patterns
    return total


def test_every_field_is_read_outside_the_config_machinery():
    unread = [name for name in field_names() if name not in source_reads().fields and name not in READ_BY_COMPUTED_NAME]
    assert not unread, (f"Config fields that no code reads: {unread}. Make the field do what its help says, or "
                        "add it to READ_BY_COMPUTED_NAME with the reason if it is read through a computed name.")


def test_allow_listed_fields_are_read_by_a_computed_name_and_only_so():
    patterns = source_reads().patterns
    for name, reason in READ_BY_COMPUTED_NAME.items():
        assert name in field_names(), f"{name} is no Config field: drop it from the allow-list"
        assert name not in source_reads().fields, f"{name} is read directly now: drop it from the allow-list"
        assert any(re.fullmatch(p, name) for p in patterns), f"no f-string getattr spells {name} ({reason})"


def test_the_scan_finds_reads_and_misses_non_reads():
    """The detector itself: typed receivers, getattr forms and Config methods count; other objects do not."""
    source = '''
def mapped(c: Config, spec):
    spec.batch_size, other.learning_rate
    return c.latent_dim, getattr(c, "seed"), c.stage_epochs("pretrain_middle"), lambda: c.prefix_len

def fingerprint(c: Config):
    return {"keys": ("max_seq_len",)}, c.to_dict()
'''
    reads = module_reads(ast.parse(source), set(config_members()))
    assert reads.fields == {"latent_dim", "seed", "prefix_len"} and reads.methods == {"stage_epochs", "to_dict"}
    assert not config_members()["to_dict"].fields  # a whole-config dump reads no field in particular
    assert config_members()["stage_epochs"].fields == {"num_epochs"}
    assert any(re.fullmatch(p, "pretrain_middle_epochs") for p in config_members()["stage_epochs"].patterns)
    computed = module_reads(ast.parse("FIELDS = ('top_k',)\ndef f(c: Config):\n    return [getattr(c, n) for n in FIELDS]"),
                            set())
    assert computed.fields == {"top_k"}
