"""TLS for the gRPC port: the certificate files, checked at start and read again when they
change (a renewed certificate is served to new connections without a restart), and
optionally a client CA that every client certificate must chain to (mutual TLS)."""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


class TlsError(ValueError):
    """A TLS file that cannot serve: the message names it and says why."""


def check_files(cert_file: str, key_file: str, client_ca_file: str | None) -> None:
    """Refuse files that could not serve: missing, not PEM, or a key that is not the
    certificate's."""
    for path in (cert_file, key_file, client_ca_file):
        if path is not None and not Path(path).is_file():
            raise TlsError(f"TLS file {path} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as exc:
        raise TlsError(
            f"TLS certificate {cert_file} and key {key_file} do not make a pair of PEM files ({exc.reason})"
        ) from None
    if client_ca_file is not None:
        try:
            context.load_verify_locations(client_ca_file)
        except ssl.SSLError as exc:
            raise TlsError(f"TLS client CA {client_ca_file} is not a PEM bundle ({exc.reason})") from None


class CertificateFiles:
    """The server's certificate, key and client CA, as gRPC server credentials that follow
    the files: before each new connection gRPC asks whether they changed (a stat of each),
    and a change, or ``reload()`` (SIGHUP), makes it read them again. Files that no longer
    load are logged and the previous ones kept."""

    def __init__(self, cert_file: str, key_file: str, client_ca_file: str | None = None) -> None:
        check_files(cert_file, key_file, client_ca_file)
        self._paths = [Path(p) for p in (cert_file, key_file, client_ca_file) if p is not None]
        self._cert, self._key = Path(cert_file), Path(key_file)
        self._client_ca = Path(client_ca_file) if client_ca_file else None
        self._lock = threading.Lock()
        self._forced = False
        self._seen = self._stamp()
        self.reloads = 0

    @property
    def mutual(self) -> bool:
        """True when clients must present a certificate."""
        return self._client_ca is not None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that pick up changed files for new connections."""
        # The fetcher returns None for "no change", as grpc documents; the stubs say otherwise.
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(),
            self._fetch,  # type: ignore[arg-type]
            require_client_authentication=self.mutual,
        )

    def reload(self) -> None:
        """Read the files again before the next connection, changed or not."""
        with self._lock:
            self._forced = True

    def _stamp(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for path in self._paths:
            try:
                status = path.stat()
            except OSError:
                stamps.append((-1, -1))
                continue
            stamps.append((status.st_mtime_ns, status.st_size))
        return tuple(stamps)

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        pair = (self._key.read_bytes(), self._cert.read_bytes())
        roots = self._client_ca.read_bytes() if self._client_ca else None
        return grpc.ssl_server_certificate_configuration([pair], root_certificates=roots)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            stamp = self._stamp()
            if stamp == self._seen and not self._forced:
                return None
            self._seen, self._forced = stamp, False
        try:
            check_files(str(self._cert), str(self._key), str(self._client_ca) if self._client_ca else None)
            configuration = self._configuration()
        except (OSError, TlsError) as exc:
            log.error("TLS files changed but cannot be used; serving the previous ones: %s", exc)
            return None
        self.reloads += 1
        log.info("TLS certificate reloaded from %s", self._cert)
        return configuration


def bind(server: grpc.aio.Server, address: str, files: CertificateFiles | None) -> int:
    """Listen on ``address``, over TLS when ``files`` are given; the port bound (0: failed)."""
    if files is None:
        return server.add_insecure_port(address)
    return server.add_secure_port(address, files.credentials())
