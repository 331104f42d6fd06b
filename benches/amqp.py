#!/usr/bin/env python3
"""AMQP publish benchmark: msgs/s from a volley script (amqp::publish_many, pipelined
confirms) side by side with a raw lapin loop doing the same, in one run.

    cargo build --release --bin volley --example amqp_raw
    python3 benches/amqp.py [N] [WINDOW] [REPS]

Needs RabbitMQ on 127.0.0.1:5672 (.ci/ensure-rabbitmq). Runs alternate so both sides
see the same machine noise; the median of REPS runs is reported.
"""
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def rate(cmd):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    m = re.search(r"RATE (\d+)", out.stdout + out.stderr)
    if not m:
        sys.exit(f"no RATE line from {' '.join(cmd)}:\n{out.stdout}\n{out.stderr}")
    return int(m.group(1))


def main():
    n = sys.argv[1] if len(sys.argv) > 1 else "50000"
    window = sys.argv[2] if len(sys.argv) > 2 else "100"
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    volley = [os.path.join(TARGET, "release", "volley"), "run", "benches/amqp_bench.rhai",
              "-e", f"N={n}", "-e", f"WINDOW={window}"]
    raw = [os.path.join(TARGET, "release", "examples", "amqp_raw"), n, window]
    script_rates, raw_rates = [], []
    for i in range(reps):
        raw_rates.append(rate(raw))
        script_rates.append(rate(volley))
        print(f"run {i + 1}: raw lapin {raw_rates[-1]:>7} msg/s   volley script {script_rates[-1]:>7} msg/s")
    r, s = float(statistics.median(raw_rates)), float(statistics.median(script_rates))
    print(f"\n{n} messages x 200 B, confirms pipelined {window} deep, median of {reps}:")
    print(f"  raw lapin loop      {r:>8.0f} msg/s")
    print(f"  volley script       {s:>8.0f} msg/s   ({100 * s / r:.0f}% of raw; goal >= 80%)")


if __name__ == "__main__":
    main()
