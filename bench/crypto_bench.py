"""Throughput and peak memory of drdrill.adapters.crypto against ``openssl enc``, run for run.

    python bench/crypto_bench.py [--size-mb 1024] [--runs 3] [--json out.json] [--dir DIR]
    (or as part of ``python -m bench --only crypto``)

Creates a random file of ``--size-mb`` MiB in a temporary directory, then runs, interleaved
and alternating which tool goes first, ``drdrill`` encrypt/decrypt (``encrypt_file`` /
``decrypt_file`` in a fresh Python process) and ``openssl enc -aes-256-cbc -salt`` with the
runbook's default key derivation. Both decrypt the same openssl-made ciphertext. Every run is
its own process; wall time includes process start (Python start-up and imports for drdrill,
~0.1 s). drdrill also fsyncs its output before the rename, openssl does not. Every output is
checked against the plaintext's SHA-256 (untimed).

Peak memory is each child's OWN peak RSS. Not ``ru_maxrss`` from ``wait4`` on our child: on
Linux a process's maxrss carries over the peak of the image it replaced at exec, which for a
child of this Python process is this process's RSS (~20 MB and more), so small children like
openssl would show the parent's size. Instead each child runs under GNU ``/usr/bin/time -f %M``
(time itself, a tiny process, is the image the child replaces), or, without GNU time, its
``VmHWM`` in ``/proc/<pid>/status`` is polled until it exits. The method is in the JSON.
Standard library + drdrill only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PW_ENV = "DRDRILL_BENCH_PASSWORD"
MIB = 1024 * 1024
GNU_TIME = "/usr/bin/time"
TOOLS = ("drdrill", "openssl")
OPS = ("encrypt", "decrypt")

# Prints the time inside encrypt_file/decrypt_file and the process's peak RSS (VmHWM, KiB) just
# before the call: interpreter + imports, so the operation's own memory is the peak minus that.
_CHILD = """
import sys, time
from drdrill.adapters.crypto import decrypt_file, encrypt_file, read_password
op, src, dst, var = sys.argv[1:5]
password = read_password(var, None)
hwm = next((line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")), "0")
start = time.perf_counter()
(encrypt_file if op == "encrypt" else decrypt_file)(src, dst, password)
print(time.perf_counter() - start, hwm)
"""


@dataclass
class Run:
    wall_s: float
    peak_rss_mib: float
    in_process_s: float | None  # drdrill only: time inside encrypt_file/decrypt_file
    before_op_rss_mib: float | None = None  # drdrill only: peak RSS after start-up, before the operation
    tool: str = ""
    op: str = ""
    run: int = 0
    mib_s: float = 0.0


def peak_rss_method() -> str:
    """``gnu-time`` when /usr/bin/time is GNU time (``-f %M``), else ``proc-vmhwm-poll``."""
    try:
        done = subprocess.run([GNU_TIME, "-f", "%M", "true"], capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "proc-vmhwm-poll"
    last = done.stderr.strip().splitlines()[-1:] or [""]
    return "gnu-time" if done.returncode == 0 and last[0].isdigit() else "proc-vmhwm-poll"


def command(tool: str, op: str, src: Path, dst: Path) -> list[str]:
    if tool == "drdrill":
        return [sys.executable, "-c", _CHILD, op, str(src), str(dst), PW_ENV]
    cmd = ["openssl", "enc", "-d"] if op == "decrypt" else ["openssl", "enc"]
    return [*cmd, "-aes-256-cbc", "-salt", "-pass", f"env:{PW_ENV}", "-in", str(src), "-out", str(dst)]


def _vmhwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def measure(cmd: list[str], env: dict[str, str], method: str) -> Run:
    """Run one process: wall time, its own peak RSS, drdrill's in-process time."""
    with tempfile.TemporaryDirectory(prefix="crypto-bench-rss-") as tmp:
        rss_file = Path(tmp) / "rss"
        argv = [GNU_TIME, "-f", "%M", "-o", str(rss_file), *cmd] if method == "gnu-time" else cmd
        with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
            start = time.perf_counter()
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err)
            peak_kib = 0
            while method != "gnu-time" and proc.poll() is None:
                peak_kib = max(peak_kib, _vmhwm_kib(proc.pid) or 0)
                time.sleep(0.005)
            proc.wait()
            wall = time.perf_counter() - start
            if proc.returncode != 0:
                err.seek(0)
                raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err.read().decode(errors='replace')}")
            out.seek(0)
            printed = out.read().decode().strip()
        if method == "gnu-time":
            peak_kib = int(rss_file.read_text().strip().splitlines()[-1])
    seconds, before_kib = [*printed.split(), "", ""][:2]
    return Run(wall_s=wall, peak_rss_mib=peak_kib / 1024, in_process_s=float(seconds) if seconds else None,
               before_op_rss_mib=int(before_kib) / 1024 if before_kib.isdigit() else None)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def make_plaintext(path: Path, size_mib: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as f:
        for _ in range(size_mib):
            block = os.urandom(MIB)
            digest.update(block)
            f.write(block)
    return digest.hexdigest()


def _one(tool: str, op: str, run: int, work: Path, plain: Path, reference: Path, expected: str,
         env: dict[str, str], method: str) -> Run:
    """One timed run, checked (untimed) against the plaintext; encryptions are decrypted by the other tool."""
    src = plain if op == "encrypt" else reference
    out = work / f"out.{tool}.{op}"
    row = measure(command(tool, op, src, out), env, method)
    if op == "encrypt":
        other = "openssl" if tool == "drdrill" else "drdrill"
        check = work / "check.bin"
        measure(command(other, "decrypt", out, check), env, method)
        ok = sha256(check) == expected
        check.unlink()
    else:
        ok = sha256(out) == expected
    out.unlink()
    if not ok:
        raise RuntimeError(f"{tool} {op} run {run}: output does not match the plaintext")
    row.tool, row.op, row.run = tool, op, run
    return row


def summarise(results: list[Run], size_mib: int) -> dict[str, dict[str, float]]:
    summary: dict[str, dict[str, float]] = {}
    for op in OPS:
        for tool in TOOLS:
            rows = [r for r in results if r.op == op and r.tool == tool]
            entry = {"median_mib_s": statistics.median(r.mib_s for r in rows),
                     "median_wall_s": statistics.median(r.wall_s for r in rows),
                     "median_peak_rss_mib": statistics.median(r.peak_rss_mib for r in rows),
                     "max_peak_rss_mib": max(r.peak_rss_mib for r in rows), "n": len(rows)}
            in_proc = [r.in_process_s for r in rows if r.in_process_s is not None]
            if in_proc:
                entry["median_in_process_mib_s"] = size_mib / statistics.median(in_proc)
            own = [r.peak_rss_mib - r.before_op_rss_mib for r in rows if r.before_op_rss_mib is not None]
            if own:  # what the operation itself added on top of the interpreter and its imports
                entry["max_operation_rss_mib"] = max(own)
            summary[f"{op}/{tool}"] = entry
        d, o = summary[f"{op}/drdrill"], summary[f"{op}/openssl"]
        summary[f"{op}/ratio"] = {
            "drdrill_over_openssl_throughput": d["median_mib_s"] / o["median_mib_s"],
            "drdrill_over_openssl_peak_rss": d["max_peak_rss_mib"] / o["max_peak_rss_mib"],
        }
    return summary


def run_benchmark(size_mib: int, runs: int, *, workdir: Path | None = None,
                  fits: Callable[[float | None], bool] | None = None,
                  say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Alternating runs; ``fits(estimate_s)`` may stop further runs (a time budget)."""
    say = say or (lambda message: print(message, file=sys.stderr))
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl not found on PATH")
    env = {**os.environ, PW_ENV: secrets.token_urlsafe(24)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    openssl_version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    method = peak_rss_method()
    results: list[Run] = []
    skipped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="drdrill-bench-", dir=workdir) as tmp:
        work = Path(tmp)
        plain = work / "plain.bin"
        say(f"crypto: creating {size_mib} MiB plaintext in {work}")
        expected = make_plaintext(plain, size_mib)
        reference = work / "reference.enc"  # what both tools decrypt
        measure(command("openssl", "encrypt", plain, reference), env, method)
        last_run_s: float | None = None
        for run in range(runs):
            started = time.monotonic()
            estimate = last_run_s * 1.2 if last_run_s is not None else None
            if run and fits is not None and not fits(estimate):
                skipped.append({"run": run + 1, "status": "skipped", "reason": "budget", "estimated_s": estimate})
                break
            tools = list(TOOLS) if run % 2 == 0 else list(reversed(TOOLS))
            for op in OPS:
                for tool in tools:
                    row = _one(tool, op, run, work, plain, reference, expected, env, method)
                    row.mib_s = size_mib / row.wall_s
                    results.append(row)
                    say(f"crypto: run {run + 1} {op:7} {tool:7} {row.wall_s:7.3f} s {row.mib_s:8.1f} MiB/s "
                        f"peak RSS {row.peak_rss_mib:6.1f} MiB")
            last_run_s = time.monotonic() - started
    return {
        "status": "ok" if results else "failed",
        "size_mib": size_mib, "runs": runs, "runs_done": len({r.run for r in results}),
        "openssl": openssl_version, "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "peak_rss_method": method,
        "notes": "wall time per process incl. start-up; drdrill fsyncs its output, openssl does not; peak RSS is "
                 "each child's own (GNU time -f %M, or VmHWM polling), not wait4's ru_maxrss",
        "summary": summarise(results, size_mib) if results else {},
        "skipped": skipped,
        "runs_raw": [asdict(r) for r in results],
    }


def render(payload: dict[str, Any]) -> str:
    summary = payload["summary"]
    lines = [f"3. Crypto: {payload['size_mib']} MiB, {payload['runs_done']} run(s) per tool and operation, "
             f"{payload['openssl']}, Python {payload['python']}, peak RSS by {payload['peak_rss_method']}",
             f"{'operation':10} {'tool':8} {'median MiB/s':>12} {'median s':>9} {'peak RSS MiB':>13}"]
    for op in OPS:
        for tool in TOOLS:
            e = summary[f"{op}/{tool}"]
            lines.append(f"{op:10} {tool:8} {e['median_mib_s']:12.1f} {e['median_wall_s']:9.3f} "
                         f"{e['max_peak_rss_mib']:13.1f}")
        r = summary[f"{op}/ratio"]
        in_proc = summary[f"{op}/drdrill"].get("median_in_process_mib_s", float("nan"))
        own = summary[f"{op}/drdrill"].get("max_operation_rss_mib", float("nan"))
        lines.append(f"{op:10} drdrill/openssl: throughput {r['drdrill_over_openssl_throughput']:.2f}, "
                     f"peak RSS {r['drdrill_over_openssl_peak_rss']:.2f} (drdrill in-process: {in_proc:.1f} MiB/s; "
                     f"the operation itself adds {own:.1f} MiB to Python + imports)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="plaintext size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=3, help="runs per tool and operation (default 3)")
    parser.add_argument("--json", type=Path, help="write the raw results and summary here")
    parser.add_argument("--dir", type=Path, help="where to create the temporary files (default: $TMPDIR)")
    args = parser.parse_args(argv)
    if args.size_mb < 1 or args.runs < 1:
        parser.error("--size-mb and --runs must be positive")
    if shutil.which("openssl") is None:
        parser.error("openssl not found on PATH")
    payload = run_benchmark(args.size_mb, args.runs, workdir=args.dir)
    print(render(payload))
    if args.json:
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
