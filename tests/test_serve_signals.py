"""``paymux serve`` stopped by SIGTERM (a service manager) or SIGINT (Ctrl-C) shuts down cleanly: it
stops serving, closes the hub (its database connections; on SQLite the WAL is checkpointed and
removed with the last connection) and exits with status 0, without an error in its log.

uvicorn raises a signal it caught again once it has stopped serving: SIGTERM's default action then
killed the process before the hub was closed, and SIGINT made asyncio cancel the hub's close.
Runs on SQLite whatever ``PAYMUX_TEST_DATABASE_URL`` says (the WAL file is the witness).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PAYMUX = Path(sys.executable).parent / "paymux"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_closes_the_hub_when_stopped_by_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    db = tmp_path / "hub.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    env.update(PAYMUX_DATABASE_URL=f"sqlite+aiosqlite:///{db}", PAYMUX_LOG_LEVEL="info")
    subprocess.run([str(PAYMUX), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    issued = subprocess.run(
        [str(PAYMUX), "admin", "issue-token"], env=env, check=True, capture_output=True, text=True, timeout=60
    )
    token = issued.stdout.strip().splitlines()[-1]
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(PAYMUX), "serve", "--no-migrate", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"paymux serve did not start:\n{log.read_text()}"
            time.sleep(0.1)
        # a read through the reader pool: a connection the hub must close when it stops
        r = httpx.get(
            f"{base}/api/v1/admin/providers", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert r.status_code == 200, r.text
        assert Path(f"{db}-wal").exists()  # the hub has the database open
        proc.send_signal(sig)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    output = log.read_text()
    assert code == 0, output
    assert "Application shutdown complete" in output
    assert " ERROR " not in output and "Traceback" not in output, output
    assert not Path(f"{db}-wal").exists(), output  # the last connection closed: the WAL checkpointed
