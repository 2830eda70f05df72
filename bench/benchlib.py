"""Shared helpers of bench/run and bench/fingerprint (python3 stdlib only).

Owns: the machine description, running a command with a wall-clock timer and
a timestamped log, and rewriting one marked section of BENCHMARKS.md while
keeping the other script's section and the closing "Benchmarks" paragraph.
"""

import os
import platform
import signal
import statistics
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"

# Order of the sections in BENCHMARKS.md; "usage" is always last.
SECTIONS = ["machine", "run", "fresh", "fingerprint", "shards", "notes", "usage"]

USAGE = """## Benchmarks

`bench/run` compares, in one run with interleaved repetitions, the hand-written
buildspec (sequential `docker pull/build --cache-from/push` and `sed`),
`docker-compose build --parallel` + `push`, and `stackbake build --local`, on
generated stacks of 4 and 12 targets over shared `base`/`deps` stages, in three
scenarios (cold, no change, one target changed). It starts its own
`docker-registry` on 127.0.0.1 and imports its own busybox base image per
sequence (so the engine cache is cold; every image it builds inherits a
`stackbake-bench=<run id>` label from that base, which is how it removes exactly
its own images afterwards), and removes every registry and temporary directory
it created. Options: `--reps N` (default 3), `--large-reps N` (repetitions for the
12-target stack, default `--reps`), `--stacks 4,12`,
`--files N` (files per target, default 500), `--sleep-scale F` (multiplies the
`RUN sleep` steps), `--keep` (keep the work dir for inspection).
`bench/fingerprint` times the hashing path (`stackbake plan --local --json` on a
Dockerfile whose single target COPYs a generated tree of about 2 GiB in 100k
files, page cache warm) and its peak RSS, against `sha256sum` and
`openssl dgst -sha256` through `xargs -P 1` and `-P nproc`; `--gib 0.2` scales the
tree down (file count follows). Both need Docker, python3, Debian's
`docker-registry` and `docker-compose`, `busybox-static` and a release build
(`cargo build --release`, run by the scripts unless `--skip-build`; they time a
copy of the binary), and rewrite only their own section of this file (the
"Where the time goes" notes are kept as they are). `bench/run --tools` runs a
subset, `--jobs N` passes `--jobs` to stackbake, `--no-write` leaves this file
alone. `bench/steps WORK/bench.log` (after `bench/run --keep`) splits each "one
changed" and "alone" stackbake run into stackbake's own time and the engine's
step times. `bench/shards` computes the balance of `build --shard K/N` on paper:
stackbake's own assignment (`plan --shard K/N`) over per-target times measured
in cold `build --jobs 1` runs of the 12-target stack and a skewed variant
(`--reps N`, default 2; `--reps 3` took 10 min here), plus a cost model of a
100-service monorepo. On this 2-core machine `bench/run --reps 3` took about 75 min,
most of it the shell baseline on 12 targets (about 14 min per repetition);
`bench/run --stacks 4 --reps 1` takes about 5 min and `bench/fingerprint` about
2 min. `bench/fresh` (as root) compares `docker buildx bake` with ECR-style
registry cache (`cache-to type=registry,mode=max,image-manifest=true,
oci-mediatypes=true`, `cache-from` the same, `--push`, provenance off) with
`stackbake build` on the side engine of `scripts/docker26` (Docker 26, containerd
image store), every scenario on a freshly wiped engine (as CodeBuild starts),
the base image from a loopback registry with one fixed digest; same stacks and
options as `bench/run` (`--reps`, `--stacks`, `--files`, `--tools bake,stackbake`,
`--jobs`, `--binary`, `--keep`, `--no-write`); `bench/fresh --reps 3` took about
11 min here. Nothing timing-based is in the test suite.
"""


def sh_out(cmd, **kw):
    """Output of a short command, stripped; '' when it fails."""
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, check=True, timeout=60, **kw
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine():
    """One markdown paragraph describing the machine and tool versions."""
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sha_ni = "sha_ni" in Path("/proc/cpuinfo").read_text()
    return "\n".join(
        [
            f"- CPU: {os.cpu_count()} × {cpu or 'unknown'} (SHA-NI: {'yes' if sha_ni else 'no'}); "
            f"memory {mem_kib / 1024 / 1024:.1f} GiB; kernel {platform.release()}",
            f"- Docker engine {sh_out(['docker', 'version', '--format', '{{.Server.Version}}'])} "
            f"(classic builder, storage driver {sh_out(['docker', 'info', '--format', '{{.Driver}}']) or '?'}), docker CLI {sh_out(['docker', 'version', '--format', '{{.Client.Version}}'])}, "
            f"{sh_out(['docker-compose', 'version', '--short']) and 'docker-compose ' + sh_out(['docker-compose', 'version', '--short'])}, "
            f"registry: {sh_out(['docker-registry', '--version']) or 'docker-registry'}",
            "- The machine is shared: other engineers' test suites were using the same "
            "Docker engine and CPUs during the run, so expect noise; medians over "
            "interleaved repetitions are the numbers to read.",
        ]
    )


def binary_line(binary):
    """Which stackbake was timed (the scripts time a copy of the release build)."""
    return (f"Binary: `{sh_out([str(binary), '--version']) or 'stackbake ?'}` "
            "(release build of target/release, copied before timing).")


def run_timed(cmd, log, cwd=None, env=None, stdout_path=None):
    """Runs cmd, appending its output to `log` with time offsets.

    Returns (exit code, wall seconds, stdout text if stdout_path is None else '').
    stderr lines (and stdout lines unless captured) are prefixed with the
    seconds since start, which is how a slow phase is found afterwards.
    """
    start = time.monotonic()
    with open(log, "a") as lf:
        lf.write(f"\n$ {' '.join(map(str, cmd))}\n")
        lf.flush()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,  # so an interrupt can stop the whole command
        )
        captured = []
        lock = threading.Lock()

        def pump(stream, keep):
            for line in stream:
                if keep:
                    captured.append(line)
                with lock:
                    lf.write(f"[{time.monotonic() - start:7.2f}] {line}")

        t_err = threading.Thread(target=pump, args=(proc.stderr, False), daemon=True)
        t_err.start()
        try:
            pump(proc.stdout, True)
            t_err.join()
            rc = proc.wait()
        except BaseException:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
            proc.wait()
            raise
        wall = time.monotonic() - start
        lf.write(f"[exit {rc} after {wall:.2f} s]\n")
    return rc, wall, "".join(captured)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x):
    if x != x:  # NaN
        return "–"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def spread(xs):
    """'median (min–max)' in seconds."""
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{fmt_s(xs[0])}"
    return f"{fmt_s(med(xs))} ({fmt_s(min(xs))}–{fmt_s(max(xs))})"


def update_section(name, body):
    """Replaces section `name` of BENCHMARKS.md (creating the file if needed).

    Sections are delimited by HTML comments; the usage paragraph is rewritten
    every time and stays last.
    """
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    parts = {}
    for s in SECTIONS:
        b, e = f"<!-- begin:{s} -->", f"<!-- end:{s} -->"
        if b in text and e in text:
            parts[s] = text.split(b, 1)[1].split(e, 1)[0].strip("\n")
    parts[name] = body.strip("\n")
    parts["usage"] = USAGE.strip("\n")
    out = [
        "# Benchmarks\n",
        "Written by `bench/run`, `bench/fresh` and `bench/fingerprint` (see the end of this file); "
        "each script rewrites only its own section.\n",
    ]
    for s in SECTIONS:
        if s in parts:
            out.append(f"<!-- begin:{s} -->\n{parts[s]}\n<!-- end:{s} -->\n")
    BENCHMARKS_MD.write_text("\n".join(out))
