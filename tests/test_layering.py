"""The import rules of DESIGN.md's layout, checked on the source (every module, every import,
including the ones inside functions): the store knows nothing of Kubernetes, ``control.api``
is pure, and the components that act on the cluster reach it only through the API client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package prefix -> the imports of ours it may not make
RULES: dict[str, tuple[str, ...]] = {
    "store": ("control", "node", "chaos", "ketch"),
    "certs": ("store", "control", "node", "chaos", "ketch"),
    "control.api": ("store", "control.client", "control.apiserver", "control.controllers",
                    "control.scheduler", "node", "chaos", "ketch"),
    "control.client": ("store", "control.apiserver", "control.controllers",
                       "control.scheduler", "node", "chaos", "ketch"),
    "control.controllers": ("store", "control.apiserver", "control.scheduler", "node",
                            "chaos", "ketch"),
    "control.scheduler": ("store", "control.apiserver", "control.controllers", "node",
                          "chaos", "ketch"),
    "node": ("store", "control.apiserver", "control.controllers", "control.scheduler",
             "chaos", "ketch"),
    "control.apiserver": ("control.client", "control.controllers", "control.scheduler",
                          "node", "chaos", "ketch"),
}


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute module name ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(), str(path))
    mod = _module(path)
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" \
                and node.args and isinstance(node.args[0], ast.Constant):
            out.append((node.lineno, str(node.args[0].value)))
    return out


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _rule_for(module: str) -> tuple[str, tuple[str, ...]] | None:
    best = None
    for prefix in RULES:
        if _under(module, prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    return None if best is None else (best, RULES[best])


def _violations(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        rule = _rule_for(_module(path))
        if rule is None:
            continue
        owner, forbidden = rule
        for line, name in _imports(path):
            for bad in forbidden:
                if _under(name, bad):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {owner} imports {name}")
    return found


def _sources() -> list[Path]:
    return [p for pkg in ("store", "certs", "control", "node", "chaos", "ketch")
            for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_the_layout_import_rules_hold() -> None:
    assert _violations(_sources()) == []


def test_product_code_never_imports_chaos() -> None:
    bad = [f"{p.relative_to(ROOT)}:{line}" for p in _sources()
           if not _under(_module(p), "chaos")
           for line, name in _imports(p) if _under(name, "chaos")]
    assert bad == []


@pytest.mark.parametrize(("module", "source", "bad"), [
    pytest.param("control/controllers/x.py", "from store.client import StoreClient\n", True,
                 id="controller-imports-store"),
    pytest.param("node/x.py", "import control.apiserver.registry\n", True,
                 id="node-imports-apiserver"),
    pytest.param("control/api/x.py", "from ..client import rest\n", True,
                 id="api-imports-client-relatively"),
    pytest.param("store/x.py", "def f():\n    from control.api import errors\n", True,
                 id="store-imports-control-in-a-function"),
    pytest.param("control/scheduler/x.py", "from control.client import informer\n", False,
                 id="scheduler-uses-the-client"),
])
def test_the_checker_catches_a_crossing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        module: str, source: str, bad: bool) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    path = tmp_path / module
    path.parent.mkdir(parents=True)
    path.write_text(source)
    assert bool(_violations([path])) is bad
