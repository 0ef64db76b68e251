"""TLS for real: a local HTTPS server with its own CA, verified, refused, or skipped loudly."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme
from conftest import bare_payload

from agent.config import SeiSettings
from agent.sei.client import SeiClient, SeiUnavailable

GUID = "0b5c7a5e-2f5d-4a7e-9a41-6f4b0f3c1d2e"


class _Accept(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def https(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server for 127.0.0.1 with a certificate from a CA only this test knows."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    yield f"https://127.0.0.1:{server.server_address[1]}/sei/api", bundle
    server.shutdown()
    server.server_close()


def post(settings: SeiSettings) -> object:
    client = SeiClient(settings)
    try:
        return client.send_build(bare_payload(instance_guid=GUID))
    finally:
        client.close()


def test_ca_bundle_verifies_and_unknown_ca_is_refused(https: tuple[str, Path]) -> None:
    url, bundle = https
    base = {"base_url": url, "api_key": "k", "retries": 0}
    assert post(SeiSettings(**base, ca_bundle=bundle)).status == 202  # type: ignore[attr-defined]
    with pytest.raises(SeiUnavailable, match="cannot be reached") as refused:
        post(SeiSettings(**base))  # the system store does not know this CA
    assert refused.value.unreachable


def test_insecure_skips_verification_and_says_so(
    https: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = https
    with caplog.at_level("WARNING"):
        answer = post(SeiSettings(base_url=url, api_key="k", insecure=True, retries=0))
    assert answer.status == 202  # type: ignore[attr-defined]
    assert "TLS certificates of SEI are NOT verified (SEI_INSECURE=true)" in caplog.text
