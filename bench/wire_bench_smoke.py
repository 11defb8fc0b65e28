#!/usr/bin/python3
"""wire_bench_smoke.py - the bench.smoke test: runs bench/wire_bench.py with tiny counts and
checks the table's shape and rows (never its figures: the load on a test machine is anyone's).
Exit 77 (skipped) without h2load. Usage: wire_bench_smoke.py <build-dir>"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
ROWS = [
    "media: client latency / node time",
    "media: node time / in-process warm",
    "PassThrough 64 KiB: CPU/call vs echo",
    "PassThrough 64 KiB: calls/s vs echo, 16 streams",
    "Gain 64 KiB: CPU/call vs echo",
    "Gain 64 KiB: calls/s vs echo, 16 streams",
    "PassThrough 4 KiB: CPU/call vs echo",
    "PassThrough 4 KiB: calls/s vs echo, 16 streams",
    "Gain 4 KiB: CPU/call vs echo",
    "Gain 4 KiB: calls/s vs echo, 16 streams",
    "big PassThrough: first call on a fresh server / warm",
    "big PassThrough: first call on a fresh server / first call on a new connection to the "
    "warm server (the server's part)",
    "big PassThrough: first call on a new connection / warm (the connection's part)",
    "echo, same request: first call on a new connection / warm",
    "big PassThrough: server CPU of a fresh server's first call / of a new connection's first "
    "call",
    "big PassThrough: server CPU of a fresh server's first call / of a new connection's first "
    "call, --warm-call",
] + [f"as shipped, 100 B, {s} streams: calls/s vs best echo" for s in (1, 4, 16, 64)] + [
    f"matrix threads={t} workers={w} {i}: vs best echo at 1/4/16/64"
    for t in (1, 2) for w in (1, 2) for i in ("inline", "offloaded")
] + [
    "metrics on / off, 5 nodes (calls/s)",
    "metrics on / off, 5 nodes: server CPU per call, off / on",
    "PassThrough 4 KiB: calls/s vs Python grpcio",
    "Gain (numpy) 4 KiB: calls/s vs Python grpcio",
]


def main():
    p = subprocess.run([sys.executable, os.path.join(HERE, "wire_bench.py"), "--smoke",
                        "--build", sys.argv[1]], capture_output=True, text=True, timeout=540)
    if p.returncode == 77:
        print(p.stderr)
        return 77
    print(p.stdout)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.splitlines()
    assert lines[0].startswith("wire_bench: 1 round(s), medians; load average "), lines[0]
    table = [ln for ln in lines if ln.startswith("|")]
    assert table[0] == "| comparison | this server | baseline | ratio | goal |", table[0]
    assert table[1] == "|---|---|---|---|---|"
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in table[2:]]
    assert all(len(c) == 5 for c in cells), cells
    assert [c[0] for c in cells] == ROWS, [c[0] for c in cells]
    for label, value, base, ratio, goal in cells:
        if label.startswith("matrix"):
            parts = ratio.split(" / ")
            assert len(parts) == 4 and all(NUMBER.match(x) for x in parts), (label, ratio)
        else:  # n/a: no in-process figure
            assert ratio == "n/a" or NUMBER.match(ratio), (label, ratio)
        assert goal, label
    return 0


if __name__ == "__main__":
    sys.exit(main())
