"""``paymux recurring simulate``: a month of simulated time against the emulators, from the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("PAYMUX_TEST_DATABASE_URL")),
    reason="the simulation runs on a SQLite database of its own: once per suite is enough",
)


def test_a_simulated_month_charges_refunds_reminds_and_never_charges_twice() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYMUX_")}
    r = subprocess.run(
        [str(Path(sys.executable).parent / "paymux"), "recurring", "simulate", "--days", "31"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    out = r.stdout
    assert r.returncode == 0, out + r.stderr
    kinds = re.search(r"subscriptions:\s+(.*)", out)
    assert kinds and all(k in kinds.group(1) for k in ("scheduled", "threshold", "debt")), out
    charges = re.search(r"charges:\s+(\d+) \(([\d.]+) RUB\)", out)
    assert charges and int(charges.group(1)) >= 10, out
    assert int(re.search(r"refunds:\s+(\d+)", out).group(1)) >= 0  # type: ignore[union-attr]
    assert int(re.search(r"debts confirmed:\s+(\d+)", out).group(1)) >= 1  # type: ignore[union-attr]
    sent = re.search(r"reminders sent:\s+(\d+) \(repeated (\d+), subscribed (\d+), opted out (\d+)", out)
    assert sent and int(sent.group(1)) >= 12 and int(sent.group(2)) >= 1 and int(sent.group(3)) >= 1, out
    assert "charged twice:      0" in out
    assert "every debit matched or refunded: yes" in out and "ledger balanced:    yes" in out
