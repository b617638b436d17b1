"""Generates the carts protobuf and gRPC modules from `protobuf/*.proto` into `streamapp/rpc/carts/pb/`.

The generated code is never committed. It is produced
- by `setup.py` when a wheel is built (and, for editable installs, into the source tree), and
- at first import (`streamapp.rpc.carts.protos`) when the sources changed since the last run,
  so a fresh clone or an edited .proto needs no extra step.

This module imports nothing from streamapp: `setup.py` loads it by path, before
the package's dependencies exist.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

PROTO_FILES = ("type.proto", "item.proto", "cart.proto")
PACKAGE_DIR = Path(__file__).resolve().parent
OUTPUT_DIR = PACKAGE_DIR / "pb"
STAMP = ".fingerprint"
# Bump when the generation itself changes (flags, post-processing).
GENERATOR_VERSION = "1"

# protoc writes `import type_pb2 as type__pb2` for imports between our own files,
# which only works with the output folder on sys.path. Inside a package they
# must be relative.
_MODULES = "|".join(name.removesuffix(".proto") + "_pb2" for name in PROTO_FILES)
_OWN_IMPORT = re.compile(rf"^import ({_MODULES}) as (\w+)$", re.M)


def source_dir() -> Path | None:
    """`protobuf/` of a source checkout; None in an installed wheel (the code was built in)."""
    candidate = PACKAGE_DIR.parents[2] / "protobuf"
    return candidate if all((candidate / name).is_file() for name in PROTO_FILES) else None


def fingerprint(sources: Path) -> str:
    digest = hashlib.sha256(GENERATOR_VERSION.encode())
    for name in PROTO_FILES:
        digest.update(name.encode() + b"\0" + (sources / name).read_bytes() + b"\0")
    return digest.hexdigest()


def is_current(sources: Path, output: Path = OUTPUT_DIR) -> bool:
    stamp = output / STAMP
    return stamp.is_file() and stamp.read_text().strip() == fingerprint(sources)


def generate(sources: Path, output: Path) -> None:
    """Run protoc (from grpcio-tools) and swap the result into `output` in one rename."""
    from importlib import resources

    from grpc_tools import protoc

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".pb-", dir=output.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the package must be readable by all
    try:
        well_known = str(resources.files("grpc_tools") / "_proto")
        argv = [
            "protoc",
            f"-I{sources}",
            f"-I{well_known}",
            f"--python_out={staging}",
            f"--pyi_out={staging}",
            f"--grpc_python_out={staging}",
            *PROTO_FILES,
        ]
        if protoc.main(argv) != 0:
            raise RuntimeError(f"protoc failed on {sources} (see the messages above)")
        for path in staging.iterdir():
            if path.suffix in {".py", ".pyi"}:
                path.write_text(_OWN_IMPORT.sub(r"from . import \1 as \2", path.read_text()))
        (staging / "__init__.py").write_text(
            '"""Generated from protobuf/*.proto by streamapp.rpc.carts.codegen: '
            'do not edit, not committed."""\n'
        )
        (staging / STAMP).write_text(fingerprint(sources) + "\n")
        _swap(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, output: Path) -> None:
    old = output.with_name(f".{output.name}-old-{os.getpid()}")
    if output.exists():
        output.rename(old)
    staging.rename(output)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Several processes (workers, tests) may import at once: one generates, the others wait."""
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_generated(output: Path = OUTPUT_DIR) -> None:
    """Regenerate when the .proto sources changed; trust the built-in code when there are none."""
    sources = source_dir()
    if sources is None:
        if not (output / "__init__.py").is_file():
            raise ImportError(
                "streamapp.rpc.carts.pb is missing and there are no protobuf/ sources to generate it from"
            )
        return
    if is_current(sources, output):
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    with _locked(output.parent / ".pb.lock"):
        if not is_current(sources, output):
            generate(sources, output)


def main() -> int:
    sources = source_dir()
    if sources is None:
        print("no protobuf/ sources next to this package", file=sys.stderr)
        return 1
    with _locked(OUTPUT_DIR.parent / ".pb.lock"):
        generate(sources, OUTPUT_DIR)
    print(f"generated {OUTPUT_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
