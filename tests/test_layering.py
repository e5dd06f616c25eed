"""The package boundaries of docs/architecture.md, checked on the source text (every import, also
those inside functions), plus what importing a package must not drag in or change, and a rule every
module's source keeps (TensorFlow functions traced without AutoGraph)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "trainers", "spaces", "results", "cluster", "server", "web", "search", "cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


ALL = {name: path for package in PACKAGES for name, path in modules(package).items()}


def imports(path: Path) -> set[str]:
    """Every absolute module name imported anywhere in the file (``from a.b import c`` gives ``a.b``
    and, when ``a.b.c`` is one of our modules, ``a.b.c`` too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in ALL)
    return names


def within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def own_imports(path: Path) -> set[str]:
    return {n for n in imports(path) if within(n, *PACKAGES)}


# What each package may import of ours (docs/architecture.md, "The house"). Dependencies point down:
# cli on top; search beside server and web; results, cluster and spaces below; trainers; the floor.
MAY_IMPORT = {
    "common": ("common",),
    "trainers": ("common", "trainers"),
    "spaces": ("common", "spaces"),
    "results": ("common", "results"),
    "cluster": ("common", "cluster"),
    "server": ("common", "results", "server", "cluster.object_store"),
    # the page reads bundles through the card's light reader and ships export's JavaScript renderer
    "web": ("common", "web", "trainers.export.card", "trainers.export.js"),
    "search": ("common", "spaces", "results", "trainers", "cluster", "search"),
    "cli": PACKAGES,
}
# Third-party packages a package must never import (heavy ones stay out of the light layers).
NEVER = {
    "common": (),  # the floor: the standard library only (test_the_floor_uses_the_standard_library_only)
    "trainers": ("ray", "mlflow", "optuna", "keras_tuner"),
    "spaces": ("ray", "mlflow", "tensorflow"),
    "results": ("ray", "tensorflow", "keras_tuner", "optuna"),
    "cluster": ("mlflow", "tensorflow", "keras", "optuna", "keras_tuner"),
    "server": ("ray", "tensorflow", "keras", "optuna", "keras_tuner"),
    "web": ("ray", "mlflow", "tensorflow", "keras"),
    "search": (),
    "cli": (),
}


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_rooms_below_it(package):
    for name, path in modules(package).items():
        bad = sorted(n for n in own_imports(path) if not within(n, *MAY_IMPORT[package]))
        assert not bad, f"{name} imports {bad}"


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_imports_a_library_kept_out_of_its_layer(package):
    for name, path in modules(package).items():
        bad = sorted(n for n in imports(path) if within(n, *NEVER[package]))
        assert not bad, f"{name} imports {bad}"


def test_the_floor_uses_the_standard_library_only():
    for name, path in modules("common").items():
        outside = sorted(n for n in imports(path) if n.split(".")[0] not in sys.stdlib_module_names
                         and not within(n, "common"))
        assert not outside, f"{name} imports {outside}"


# Which rooms of trainers/ a room may use: data and model at the bottom, then training, and export
# beside training (never on it). ddsp_compat and runtime are shared tools.
SHARED_TOOLS = ("trainers.ddsp_compat", "trainers.runtime")
TRAINER_ROOMS = {
    "trainers.data": ("trainers.data", *SHARED_TOOLS),
    "trainers.model": ("trainers.model", *SHARED_TOOLS),
    "trainers.training": ("trainers.training", "trainers.data", "trainers.model", *SHARED_TOOLS),
    "trainers.export": ("trainers.export", "trainers.data", "trainers.model", *SHARED_TOOLS),
}


@pytest.mark.parametrize("room", sorted(TRAINER_ROOMS))
def test_trainer_rooms_point_one_way(room):
    for name, path in modules("trainers").items():
        if not within(name, room):
            continue
        bad = sorted(n for n in own_imports(path) if within(n, "trainers") and not within(n, *TRAINER_ROOMS[room]))
        assert not bad, f"{name} imports {bad}"


def test_export_never_imports_training():
    for name, path in modules("trainers").items():
        if within(name, "trainers.export"):
            assert not [n for n in own_imports(path) if within(n, "trainers.training")], name


def test_search_algorithms_know_nothing_of_the_sweep_around_them():
    """Searchers and schedulers are algorithms over results: no storage, MLflow, trainer or orchestration."""
    for name, path in modules("search").items():
        if within(name, "search.algorithms"):
            bad = sorted(n for n in own_imports(path) if within(n, "search", "cluster", "trainers")
                         and not within(n, "search.algorithms"))
            assert not bad and "mlflow" not in {n.split(".")[0] for n in imports(path)}, f"{name} imports {bad}"


def test_no_import_cycles():
    graph = {name: {n for n in own_imports(path) if n in ALL and n != name} for name, path in ALL.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(nxt):] + [node, nxt]
                                                          if nxt in trail else trail + [node, nxt]))
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_product_code_never_imports_tests_or_benchmarks():
    for name, path in ALL.items():
        bad = sorted(n for n in imports(path) if within(n, "tests", "support", "conftest", "bench"))
        assert not bad, f"{name} imports {bad}"


def test_only_the_compat_module_imports_ddsp_directly():
    for package in (*PACKAGES, "tests", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "ddsp_compat.py":
                continue
            assert not any(within(n, "ddsp") for n in imports(path)), f"{path.relative_to(ROOT)} imports ddsp directly"


def is_tf_function(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == "function" and \
        isinstance(node.value, ast.Name) and node.value.id == "tf"


def test_product_code_traces_without_autograph():
    """Every ``tf.function`` says ``autograph=False``: AutoGraph's source conversion doubled a trace and left a
    generated file in the temp folder for each converted function wherever a process ends without running its
    atexit handlers, as Ray's workers do (trainers/training/train.py, ``make_train_step``)."""
    for name, path in ALL.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):  # a bare @tf.function
                assert not any(is_tf_function(d) for d in node.decorator_list), \
                    f"{name}:{node.lineno}: @tf.function without autograph=False"
            if isinstance(node, ast.Call) and is_tf_function(node.func):
                autograph = next((k.value for k in node.keywords if k.arg == "autograph"), None)
                assert isinstance(autograph, ast.Constant) and autograph.value is False, \
                    f"{name}:{node.lineno}: tf.function without autograph=False"


def test_tests_take_helpers_from_tests_only():
    test_modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        bad = sorted(n for n in imports(path) if within(n, "bench", "conftest") or n.split(".")[0] in test_modules)
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def _fresh_python(code: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_results_for_pareto_and_export_import_no_ray():
    out = _fresh_python("import sys, results.report, results.champion; print('ray' in sys.modules)")
    assert out.strip() == "False"


def test_help_and_argument_errors_import_no_tensorflow_ray_or_mlflow():
    """`tonesweep --help`, a command's --help and a flag error are answered by the light layers only."""
    code = ("import sys\n"
            "from cli.main import main\n"
            "for argv in (['--help'], ['sweep', '--help'], ['export', '--help'], ['sweep', '--trials', 'x']):\n"
            "    try:\n"
            "        main(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "heavy = ('tensorflow', 'ray', 'mlflow', 'keras', 'optuna', 'keras_tuner', 'pandas')\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))")
    assert _fresh_python(code).strip().splitlines()[-1] == "[]"


def test_importing_any_module_sets_no_environment_variable():
    """Third-party libraries set some at import (TensorFlow, Ray, MLflow); they are imported first."""
    ours = sorted(n for n in ALL if n != "cli.__main__")
    theirs = sorted({n.split(".")[0] for path in ALL.values() for n in imports(path)}
                    - set(PACKAGES) - set(sys.stdlib_module_names) - {"ddsp", "tensorflowjs"})
    code = ("import importlib, json, os\n"
            f"for name in {theirs!r}:\n"
            "    importlib.import_module(name)\n"
            "before = dict(os.environ)\n"
            f"for name in {ours!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(k for k in os.environ if os.environ.get(k) != before.get(k))))")
    assert json.loads(_fresh_python(code).strip().splitlines()[-1]) == []
