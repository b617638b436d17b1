"""Build hook: generate the carts protobuf code (never committed) into the package being built.

Everything else about the project is in pyproject.toml.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _codegen() -> Any:
    # By path: importing the streamapp package here would need its dependencies.
    spec = importlib.util.spec_from_file_location("_streamapp_codegen", ROOT / "streamapp/rpc/carts/codegen.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithProtos(build_py):
    def run(self) -> None:
        super().run()
        codegen = _codegen()
        if self.editable_mode:
            # Editable installs import from the source tree: generate there.
            codegen.ensure_generated()
        else:
            codegen.generate(ROOT / "protobuf", Path(self.build_lib) / "streamapp/rpc/carts/pb")


setup(cmdclass={"build_py": BuildPyWithProtos})
