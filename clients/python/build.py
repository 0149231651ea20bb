"""Build the jobtask-api wheel: the stubs of generated/ and the protos of protos/, laid out
in a scratch folder, then `pip wheel`. Usage: python clients/python/build.py DIST_DIR"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def build(dist: Path) -> Path:
    """The path of the built wheel, in ``dist``."""
    dist.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        project = Path(scratch) / "jobtask-api"
        project.mkdir()
        shutil.copy(HERE / "pyproject.toml", project)
        shutil.copy(HERE / "README.md", project)
        package = project / "jobtask"
        shutil.copytree(ROOT / "generated" / "jobtask", package, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "protos", package / "protos")
        (package / "py.typed").touch()
        before = set(dist.glob("jobtask_api-*.whl"))
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(project)],
            check=True,
        )
    built = sorted(set(dist.glob("jobtask_api-*.whl")) - before) or sorted(dist.glob("jobtask_api-*.whl"))
    return built[-1]


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "dist")))
