"""The processes ``paymux bench`` starts, and what ``/proc`` says about them and the machine.

Only processes started here are ever stopped, each by its own pid (SIGTERM, then SIGKILL).
No psutil: CPU time and memory come from ``/proc/<pid>/stat`` and ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def paymux_command() -> list[str]:
    """How to run the ``paymux`` console script of this installation."""
    beside = Path(sys.executable).parent / "paymux"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("paymux")
    if found:
        return [found]
    return [sys.executable, "-c", "from paymux.cli import main; main()"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = data.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in KiB ({} if it is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


class MachineCpu(NamedTuple):
    """Jiffies of all CPUs since boot, from /proc/stat."""

    busy: int  # everything but idle and iowait (steal included: the CPU was not ours)
    total: int
    steal: int  # taken by the hypervisor for other guests: a noisy host shows here


def machine_cpu() -> MachineCpu:
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])
    return MachineCpu(total - idle, total, values[7] if len(values) > 7 else 0)


def busy_percent(before: MachineCpu, after: MachineCpu) -> float:
    total = after.total - before.total
    return round(100.0 * (after.busy - before.busy) / total, 1) if total > 0 else 0.0


def steal_percent(before: MachineCpu, after: MachineCpu) -> float:
    """Share of the machine's CPU time the hypervisor gave to others meanwhile."""
    total = after.total - before.total
    return round(100.0 * (after.steal - before.steal) / total, 1) if total > 0 else 0.0


@dataclass
class Proc:
    """A started process with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def memory(self) -> dict[str, int]:
        return memory_kb(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait()


def start(name: str, argv: Sequence[str], env: dict[str, str], logdir: Path) -> Proc:
    log = logdir / f"{name}.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=logdir
        )
    return Proc(name, popen, log)


async def wait_http(proc: Proc, port: int, path: str, within: float = 60.0) -> None:
    """Wait until ``GET path`` on 127.0.0.1:port answers 200 (or fail if the process exits)."""
    deadline = time.monotonic() + within
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    while True:
        if not proc.alive():
            raise RuntimeError(
                f"{proc.name} exited with code {proc.popen.returncode} while starting:\n{proc.log_tail()}"
            )
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(request)
                line = await reader.readline()
                if line.split(b" ")[1:2] == [b"200"]:
                    return
            finally:
                writer.close()
        except (OSError, IndexError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name} did not answer on port {port} within {within} s")
        await asyncio.sleep(0.1)


def run_cli(args: Sequence[str], env: dict[str, str], cwd: Path) -> str:
    """Run ``paymux ARGS`` to completion; returns its stdout (raises with its output on failure)."""
    done = subprocess.run(
        [*paymux_command(), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"paymux {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _fsync_ms(directory: Path, rounds: int = 20) -> float:
    """Median time of a 4 KiB write + fsync in ``directory`` (what a durable commit costs at least)."""
    times: list[float] = []
    fd, name = tempfile.mkstemp(dir=directory, prefix="fsync-")
    try:
        block = b"x" * 4096
        for _ in range(rounds):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        os.unlink(name)
    times.sort()
    return round(times[len(times) // 2], 3)


def machine_info(work_dir: Path) -> dict[str, Any]:
    """CPU model, cores, memory and the disk under ``work_dir``."""
    model = ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    device, mount, fstype = "", "", ""
    best = -1
    target = str(work_dir.resolve())
    for line in _read("/proc/mounts").splitlines():
        parts = line.split()
        if len(parts) >= 3 and (target == parts[1] or target.startswith(parts[1].rstrip("/") + "/")):
            if len(parts[1]) > best:
                best, device, mount, fstype = len(parts[1]), parts[0], parts[1], parts[2]
    dev = Path(device).name
    rotational = _read(f"/sys/block/{dev}/queue/rotational")
    disk = {"device": device, "mount": mount, "fs": fstype}
    if rotational:
        disk["kind"] = "rotational" if rotational == "1" else "non-rotational (SSD or virtual)"
    total = shutil.disk_usage(work_dir).total
    disk["size_gb"] = str(round(total / 1e9))
    return {
        "cpu_model": model,
        "cores": os.cpu_count() or 0,
        "memory_mb": mem_kb // 1024,
        "disk": disk,
        "fsync_4k_ms": _fsync_ms(work_dir),
        "kernel": _read("/proc/sys/kernel/osrelease"),
        "python": sys.version.split()[0],
    }
