"""The stubs-only client package: built from generated/ and protos/, installed into a fresh
virtual environment with nothing of the server, it calls a running server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.e2e.conftest import ServerThread, mint

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(dist: Path) -> Path:
    """``make client``'s build script, run as it is."""
    built = subprocess.run(
        [sys.executable, str(ROOT / "clients" / "python" / "build.py"), str(dist)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return Path(built.stdout.strip().splitlines()[-1])


CALL = textwrap.dedent(
    """
    import importlib.util, sys
    import grpc
    from importlib import resources
    from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

    address, token = sys.argv[1], sys.argv[2]
    with grpc.insecure_channel(address) as channel:
        job = jobs_pb2_grpc.JobServiceStub(channel).CreateJob(
            jobs_pb2.CreateJobRequest(job=jobs_pb2.Job(name="from the client package", kind="k")),
            metadata=[("authorization", "Bearer " + token)],
        ).job
    protos = resources.files("jobtask") / "protos" / "jobtask" / "v1" / "jobs.proto"
    absent = [m for m in ("core", "modules", "server", "grpc_tools") if importlib.util.find_spec(m)]
    print(job.name, protos.is_file(), absent)
    """
)


def test_the_client_package_calls_a_server_from_a_fresh_environment(
    server: ServerThread, tmp_path: Path
) -> None:
    assert server.running is not None
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
    )
    script = tmp_path / "call.py"
    script.write_text(CALL)
    called = subprocess.run(
        [str(python), str(script), f"127.0.0.1:{server.running.port}", mint("client", roles=("operator",))],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: nothing of the server on the path
        timeout=60,
        check=False,
    )
    assert called.returncode == 0, called.stderr
    assert called.stdout.strip() == "from the client package True []"
