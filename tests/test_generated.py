"""generated/ must be what `make gen` makes from protos/ today."""

from __future__ import annotations

import filecmp
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]


def test_generated_stubs_are_current(tmp_path: Path) -> None:
    # Our package only: google/rpc/status.proto is shipped for other languages; Python has it
    # from googleapis-common-protos.
    protos = sorted(
        str(p.relative_to(ROOT / "protos")) for p in (ROOT / "protos" / "jobtask").rglob("*.proto")
    )
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{ROOT / 'protos'}",
        f"-I{well_known}",
        f"--python_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
    ]
    assert protoc.main([*args, f"--pyi_out={tmp_path}", *protos]) == 0
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(ROOT / "generated")
        for p in (ROOT / "generated").rglob("*")
        if p.is_file() and p.name != "__init__.py" and "__pycache__" not in p.parts
    )
    assert fresh == committed, "run `make gen` and commit generated/"
    stale = [
        str(name)
        for name in fresh
        if not filecmp.cmp(tmp_path / name, ROOT / "generated" / name, shallow=False)
    ]
    assert stale == [], "run `make gen` and commit generated/"
