"""The package boundaries from docs/architecture.md, checked on the source text."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_trainers_import_neither_ray_nor_mlflow_nor_upper_packages():
    for path in sorted((ROOT / "trainers").rglob("*.py")):
        forbidden = _imported_modules(path) & {"ray", "mlflow", "search", "results", "spaces"}
        assert not forbidden, f"{path.relative_to(ROOT)} imports {sorted(forbidden)}"


def test_only_the_compat_module_imports_ddsp_directly():
    for package in ("trainers", "search", "spaces", "results", "tests", "bench"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "ddsp_compat.py":
                continue
            assert "ddsp" not in _imported_modules(path), f"{path.relative_to(ROOT)} imports ddsp directly"
