"""The layers of the design card: train -> edge; build_engines -> calib -> edge. edge imports none
of the others (and never torch: a station may not have it); build_engines and calib never import
train. Checked on the source (every import statement, also those inside functions)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "edge": {"train", "calib", "build_engines", "torch", "testkit", "bench"},
    "calib": {"train", "build_engines", "torch", "testkit", "bench"},
    "build_engines": {"train", "testkit", "bench"},
    "train": {"build_engines", "testkit", "bench"},
}


def _imports(path: Path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downwards(package):
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}"
           for p in sorted((ROOT / package).rglob("*.py")) for line, name in _imports(p) if name in FORBIDDEN[package]]
    assert not bad, "\n".join(bad)


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from train.evaluate import auroc\n")
    assert (2, "train") in list(_imports(f))
