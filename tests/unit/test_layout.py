"""The layout rule (README "Layout"): every module is a pipeline's by its place, or listed as core."""

from __future__ import annotations

import pkgutil
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import streamapp

ROOT = Path(__file__).resolve().parents[2]
# Where a pipeline's modules live: streamapp.<kind>.<pipeline> (a module or a package).
KINDS = ("pipelines", "agents", "tables", "web", "models", "rules", "services", "stores", "rpc", "config")
# Packages that only hold the pipelines' modules, and data-only packages.
HOLDERS = {f"streamapp.{kind}" for kind in KINDS} | {"streamapp", "streamapp.db", "streamapp.db.migrations"}


def contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: list[dict[str, object]] = config["tool"]["importlinter"]["contracts"]
    return found


def core_modules() -> set[str]:
    (contract,) = [c for c in contracts() if c["name"] == "the core imports no pipeline"]
    listed = contract["source_modules"]
    assert isinstance(listed, list)
    return set(listed)


def pipeline_names() -> set[str]:
    return {ep.name for ep in entry_points(group="streamapp.pipelines")}


def all_modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.walk_packages(streamapp.__path__, "streamapp.")
        # Generated protobuf code (streamapp/rpc/carts/codegen.py).
        if ".pb" not in info.name
    )


def owner(module: str, core: set[str], pipelines: set[str]) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[1] in KINDS and parts[2] in pipelines:
        return parts[2]
    if len(parts) >= 4 and parts[:3] == ["streamapp", "db", "migrations"]:
        return "migrations"
    if any(module == c or module.startswith(c + ".") for c in core):
        return "core"
    return None


def test_every_module_is_a_pipelines_or_listed_as_core() -> None:
    core, pipelines = core_modules(), pipeline_names()
    stray = [m for m in all_modules() if m not in HOLDERS and owner(m, core, pipelines) is None]
    # A new core module goes into the contract's source_modules in pyproject.toml; a
    # pipeline's module goes to streamapp/<kind>/<pipeline>.py.
    assert stray == []


def test_every_pipeline_has_its_table_of_contents_and_its_contracts() -> None:
    names = {str(c["name"]) for c in contracts()}
    (core,) = [c for c in contracts() if c["name"] == "the core imports no pipeline"]
    forbidden = core["forbidden_modules"]
    assert isinstance(forbidden, list)
    for pipeline in pipeline_names():
        assert (ROOT / "streamapp" / "pipelines" / f"{pipeline}.py").is_file()
        assert f"the {pipeline} pipeline imports no other pipeline" in names
        assert f"streamapp.*.{pipeline}" in forbidden


# Unit tests that cover a theme across modules rather than one module.
THEMED = {
    "test_layout.py",
    "test_compat_table_routing.py",
    "test_durable_store.py",
    "outbound/test_outbound.py",
}


def covered_module(test: Path) -> list[Path]:
    """Where the module a unit test file covers lives: tests/unit/<area>/test_<module>.py."""
    parts = test.relative_to(ROOT / "tests" / "unit").parts
    area, name = parts[:-1], parts[-1].removeprefix("test_").removesuffix(".py")
    bases = (
        [ROOT / Path(*area)]
        if area and area[0] in ("bench", "deploy", "simulator")
        else [ROOT / "streamapp" / Path(*area)]
    )
    return [base / f"{name}.py" for base in bases] + [base / name / "__init__.py" for base in bases]


def test_unit_tests_mirror_the_tree() -> None:
    unit = ROOT / "tests" / "unit"
    strays = [
        str(test.relative_to(unit))
        for test in sorted(unit.rglob("test_*.py"))
        if str(test.relative_to(unit)) not in THEMED and not any(p.is_file() for p in covered_module(test))
    ]
    assert strays == []
