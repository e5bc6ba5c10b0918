"""The package keeps its layers (pyproject.toml's [tool.importlinter]): no module imports a
layer above its own, and every subpackage has a place in the contract."""

from __future__ import annotations

import tomllib
from pathlib import Path

from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "clipforge"


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_no_module_imports_a_layer_above_its_own(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_every_subpackage_and_shared_module_is_in_the_contract():
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    placed = {name.strip() for layer in layers for name in layer.split("|")}
    shared = next(c for c in _contracts() if c["type"] == "forbidden")
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    modules = {f"clipforge.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    assert packages == placed, "a subpackage outside the layers contract is not checked by it"
    assert modules == set(shared["source_modules"]), "a top-level module outside the contract is not checked"
    assert set(shared["forbidden_modules"]) == {f"clipforge.{name}" for name in placed}
