"""TLS and mutual TLS on the gRPC port: certificates checked at start, reloaded on change."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from server import config
from server.auth import AuthMode
from server.cli.main import cli
from server.config import Settings
from tests.e2e.conftest import ServerThread, auth
from tests.server.certificates import Authority, Issued


@dataclasses.dataclass
class Pki:
    ca: Authority
    server: Issued
    client: Issued
    rogue_client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca, rogue = Authority(tmp_path, "ca"), Authority(tmp_path, "rogue-ca")
    return Pki(
        ca=ca,
        server=ca.issue("jobtask", server=True, file_stem="server"),
        client=ca.issue("billing", server=False),
        rogue_client=rogue.issue("intruder", server=False),
    )


def channel_to(address: str, ca: Path, client: Issued | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    return grpc.secure_channel(address, credentials)


def answers(channel: grpc.Channel) -> bool:
    """True when a health check over ``channel`` reaches the service; False when the
    connection is refused (UNAVAILABLE: no handshake)."""
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.RpcError as error:
        if error.code() is not grpc.StatusCode.UNAVAILABLE:
            raise
        return False
    return True


@pytest.fixture
def tls_server(
    serve: Callable[[Settings], ServerThread], settings: Settings, pki: Pki
) -> tuple[str, ServerThread]:
    running = serve(
        dataclasses.replace(settings, tls_cert_file=str(pki.server.cert), tls_key_file=str(pki.server.key))
    )
    assert running.running is not None
    return f"127.0.0.1:{running.running.port}", running


def test_tls_serves_clients_that_trust_the_ca_and_not_plaintext(
    tls_server: tuple[str, ServerThread], pki: Pki
) -> None:
    address, _ = tls_server
    with channel_to(address, pki.ca.cert) as secure:
        assert answers(secure)
        job = jobs_pb2.Job(name="over tls", kind="k")
        created = jobs_pb2_grpc.JobServiceStub(secure).CreateJob(  # type: ignore[no-untyped-call]
            jobs_pb2.CreateJobRequest(job=job), metadata=auth()
        )
        assert created.job.name == "over tls"
    with grpc.insecure_channel(address) as plain:
        assert not answers(plain)
    with channel_to(address, pki.rogue_client.cert) as distrusting:
        assert not answers(distrusting)


def test_mutual_tls_admits_only_certificates_of_the_client_ca(
    serve: Callable[[Settings], ServerThread], settings: Settings, pki: Pki
) -> None:
    running = serve(
        dataclasses.replace(
            settings,
            tls_cert_file=str(pki.server.cert),
            tls_key_file=str(pki.server.key),
            tls_client_ca_file=str(pki.ca.cert),
        )
    )
    assert running.running is not None
    address = f"127.0.0.1:{running.running.port}"
    with channel_to(address, pki.ca.cert, pki.client) as admitted:
        assert answers(admitted)
    with channel_to(address, pki.ca.cert) as anonymous:
        assert not answers(anonymous)
    with channel_to(address, pki.ca.cert, pki.rogue_client) as intruder:
        assert not answers(intruder)


def test_a_renewed_certificate_is_served_to_new_connections(
    tls_server: tuple[str, ServerThread], pki: Pki, tmp_path: Path
) -> None:
    address, running = tls_server
    assert running.running is not None and running.running.certificates is not None
    renewed_ca = Authority(tmp_path, "renewed-ca")
    renewed = renewed_ca.issue("jobtask", server=True, file_stem="renewed")
    with channel_to(address, renewed_ca.cert) as early:
        assert not answers(early)
    time.sleep(0.01)  # a later modification time than the first files'
    shutil.copyfile(renewed.key, pki.server.key)
    shutil.copyfile(renewed.cert, pki.server.cert)
    with channel_to(address, renewed_ca.cert) as late:
        assert answers(late)
    assert running.running.certificates.reloads == 1

    pki.server.cert.write_text("not a certificate")
    with channel_to(address, renewed_ca.cert) as after_breakage:
        assert answers(after_breakage)  # the last good files keep serving
    running.running.certificates.reload()
    with channel_to(address, renewed_ca.cert) as forced:
        assert answers(forced)
    assert running.running.certificates.reloads == 1


def test_the_command_line_talks_tls_and_mutual_tls(tls_server: tuple[str, ServerThread], pki: Pki) -> None:
    address, _ = tls_server
    token = auth()[0][1].removeprefix("Bearer ")
    result = CliRunner().invoke(
        cli, ["--server", address, "--token", token, "--ca-file", str(pki.ca.cert), "jobs", "list"]
    )
    assert result.exit_code == 0, result.output
    missing_key = CliRunner().invoke(
        cli,
        ["--server", address, "--token", token, "--cert-file", str(pki.client.cert), "jobs", "list"],
    )
    assert missing_key.exit_code != 0 and "--key-file" in missing_key.output


def test_settings_that_cannot_serve_tls_are_refused(pki: Pki, tmp_path: Path) -> None:
    base = Settings(jwt_secret="x" * 32)
    other = pki.ca.issue("other", server=True)
    refusals = {
        "both --tls-cert-file and --tls-key-file": {"tls_cert_file": str(pki.server.cert)},
        "needs --tls-cert-file": {"tls_client_ca_file": str(pki.ca.cert)},
        "does not exist": {"tls_cert_file": str(tmp_path / "nope.pem"), "tls_key_file": str(pki.server.key)},
        "do not make a pair": {"tls_cert_file": str(pki.server.cert), "tls_key_file": str(other.key)},
        "not a PEM bundle": {
            "tls_cert_file": str(pki.server.cert),
            "tls_key_file": str(pki.server.key),
            "tls_client_ca_file": str(pki.server.key),
        },
    }
    for message, changes in refusals.items():
        with pytest.raises(config.ConfigError, match=message):
            dataclasses.replace(base, **changes).check()  # type: ignore[arg-type]


def test_header_identity_beyond_loopback_needs_mutual_tls(pki: Pki) -> None:
    headers = Settings(auth_mode=AuthMode.HEADERS, listen="0.0.0.0:50051")
    with pytest.raises(config.ConfigError, match="mutual TLS"):
        headers.check()
    with pytest.raises(config.ConfigError, match="refusing to listen"):
        dataclasses.replace(
            headers, tls_cert_file=str(pki.server.cert), tls_key_file=str(pki.server.key)
        ).check()
    dataclasses.replace(
        headers,
        tls_cert_file=str(pki.server.cert),
        tls_key_file=str(pki.server.key),
        tls_client_ca_file=str(pki.ca.cert),
    ).check()
