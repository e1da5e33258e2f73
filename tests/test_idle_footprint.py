"""What a started server holds before any request: libraries used only by some pages stay out."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_app_starts_without_importing_the_excel_and_qr_code_libraries(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # openpyxl (Excel exports, statements, registers) is about 6 MB of an idle server's memory, segno
    # (the second factor's QR code) about 1 MB: they are imported by the code that uses them
    script = textwrap.dedent(
        f"""
        import sys
        from paymux.api.app import create_app
        from paymux.runtime import Hub
        from paymux.settings import Settings
        create_app(Hub(Settings(database_url="sqlite+aiosqlite:///{tmp_path}/x.db")), run_workers=True)
        print(sorted(m for m in ("openpyxl", "segno") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
