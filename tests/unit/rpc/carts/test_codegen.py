"""Protobuf code generation: from protobuf/, with package-relative imports, redone only on change."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

from streamapp.rpc.carts import codegen


def test_generates_an_importable_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = codegen.source_dir()
    assert sources is not None
    out = tmp_path / "genpkg"
    codegen.generate(sources, out)
    cart_module = (out / "cart_pb2.py").read_text()
    assert "from . import item_pb2 as item__pb2" in cart_module
    assert "\nimport item_pb2" not in cart_module
    assert (out / "cart_pb2.pyi").is_file()
    assert codegen.is_current(sources, out)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        module = importlib.import_module("genpkg.cart_pb2_grpc")
        assert hasattr(module, "CartStub")
        assert hasattr(module, "add_CartServicer_to_server")
    finally:
        for name in [m for m in sys.modules if m == "genpkg" or m.startswith("genpkg.")]:
            del sys.modules[name]


def test_regenerates_only_when_the_sources_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = codegen.source_dir()
    assert sources is not None
    copy = tmp_path / "protobuf"
    shutil.copytree(sources, copy)
    monkeypatch.setattr(codegen, "source_dir", lambda: copy)
    out = tmp_path / "pkg" / "pb"
    codegen.ensure_generated(out)
    stamp = (out / codegen.STAMP).stat().st_mtime_ns
    codegen.ensure_generated(out)
    assert (out / codegen.STAMP).stat().st_mtime_ns == stamp
    (copy / "item.proto").write_text((copy / "item.proto").read_text() + "\n// changed\n")
    assert not codegen.is_current(copy, out)
    codegen.ensure_generated(out)
    assert codegen.is_current(copy, out)


def test_installed_code_without_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codegen, "source_dir", lambda: None)
    with pytest.raises(ImportError):
        codegen.ensure_generated(tmp_path / "missing")
    present = tmp_path / "present"
    present.mkdir()
    (present / "__init__.py").write_text("")
    codegen.ensure_generated(present)  # a wheel's built-in code is trusted


def test_main_regenerates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pb"
    monkeypatch.setattr(codegen, "OUTPUT_DIR", out)
    assert codegen.main() == 0
    assert (out / "item_pb2_grpc.py").is_file()
    assert str(out) in capsys.readouterr().out
    monkeypatch.setattr(codegen, "source_dir", lambda: None)
    assert codegen.main() == 1
