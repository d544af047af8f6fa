"""Issue 29, defect 6: the one hub probe (fiagen.core.hub) asks through the hub client's session, so a
proxy is honoured: behind HTTP(S)_PROXY a hub the proxy reaches is reachable. Loopback only. Failed
before its fix (a bare TCP connection to the hub's own host, which does not resolve here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PROBE = "import json; from fiagen.core.hub import hub_unreachable; print(json.dumps(hub_unreachable()))"


class _Proxy(BaseHTTPRequestHandler):
    """A forward proxy that answers every request itself: 200 for HEAD, CONNECT refused (403)."""

    seen: list[str] = []

    def do_HEAD(self) -> None:
        self.seen.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_CONNECT(self) -> None:
        self.seen.append(self.requestline)
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    _Proxy.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Proxy.seen
    finally:
        server.shutdown()
        server.server_close()


def probe(tmp_path: Path, endpoint: str, **extra: str) -> str | None:
    """The probe's answer in a fresh process with this environment (the hub client reads it at import)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint, HF_HUB_ETAG_TIMEOUT="5", **extra)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_hub_behind_a_proxy_is_reached_through_it(proxy, tmp_path: Path) -> None:
    url, seen = proxy
    # hub.invalid does not resolve (RFC 2606): only the proxy can reach it
    assert probe(tmp_path, "http://hub.invalid", HTTP_PROXY=url) is None
    assert seen == ["HEAD http://hub.invalid/ HTTP/1.1"]
    # an https hub: the probe asks the proxy for a tunnel; refused, it says why in one line
    reason = probe(tmp_path, "https://hub.invalid", HTTPS_PROXY=url)
    assert seen[1:] == ["CONNECT hub.invalid:443 HTTP/1.1"]
    assert reason.startswith("hub.invalid cannot be reached: ") and len(reason.splitlines()) == 1


def test_without_a_proxy_or_offline_the_reason_is_one_line(tmp_path: Path) -> None:
    reason = probe(tmp_path, "http://127.0.0.1:9")  # the discard port: refused at once
    assert reason.startswith("127.0.0.1 cannot be reached: ") and len(reason.splitlines()) == 1
    assert probe(tmp_path, "http://127.0.0.1:9", HF_HUB_OFFLINE="1") == "HF_HUB_OFFLINE is set"


def test_both_hub_callers_use_the_one_probe() -> None:
    from fiagen.core import hub
    from fiagen.precompute.reconstruct import sd_vae
    from fiagen.train import pretrained

    assert pretrained.hub_unreachable is hub.hub_unreachable and sd_vae.hub_unreachable is hub.hub_unreachable
