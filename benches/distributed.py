#!/usr/bin/env python3
"""Distributed runs against one process, side by side in one run against one local nginx.

  python3 benches/distributed.py            # median of 3 rounds of 10 s
  python3 benches/distributed.py --quick    # one round of 5 s

The same load (benches/http_loop.rhai: VUs looping a GET) made by one volley process
with 2 workers, then by `--local-agents 2` (a coordinator and 2 agent processes of 1
worker each): requests/s and CPU microseconds per request (user+sys of the coordinator
and its agents, which it waits for / requests nginx counted), and the ratio. Then an
open-model rate of 2,000/s across 3 local agents: achieved vs target. Needs nginx
(apt-get install -y nginx-light) and a release build (cargo build --release --locked).
Load goes to 127.0.0.1 only.
"""
import os, statistics, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (nginx, rusage and the volley runner)


def main():
    if not os.path.exists(bench.VOLLEY):
        raise SystemExit("build first: cargo build --release --locked")
    secs = 5 if bench.QUICK else 10
    d = bench.start_nginx()
    try:
        print(f"# one process vs 2 local agents, against nginx on {bench.BASE} ({os.cpu_count()} cores, median of {bench.ROUNDS})\n")
        script = os.path.join(bench.ROOT, "benches", "http_loop.rhai")
        print("| connections | made by | requests/s | CPU us/request | volley's count = nginx's |\n|---|---|---|---|---|")
        for c in (50, 1000):
            base = [bench.VOLLEY, "run", "--progress", "off", script, "-e", f"BASE_URL={bench.BASE}",
                    "-e", f"VUS={c}", "-e", f"DURATION={secs}s"]
            shapes = {"one process, 2 workers": base + ["--workers", "2"], "2 local agents": base + ["--local-agents", "2"]}
            runs = {}
            for _ in range(bench.ROUNDS):
                for label, cmd in shapes.items():
                    reqs, cpu, rss, wall, out = bench.by_server(cmd)
                    counted = bench.re.search(r"requests=([\d.]+)", out)
                    exact = counted is not None and int(float(counted.group(1))) == reqs
                    runs.setdefault(label, []).append((reqs / secs, cpu / max(reqs, 1) * 1e6, exact))
            med = {}
            for label, r in runs.items():
                rps, us = statistics.median(x[0] for x in r), statistics.median(x[1] for x in r)
                med[label] = us
                print(f"| {c} | {label} | {rps:.0f} | {us:.2f} | {all(x[2] for x in r)} |")
            one, two = med["one process, 2 workers"], med["2 local agents"]
            print(f"| {c} | ratio agents/one | | {two / one:.3f} | |")

        print("\n## Open model across 3 local agents: achieved vs target")
        print("| target/s | achieved/s | iterations | dropped |\n|---|---|---|---|")
        for rate in (2000,):
            cmd = [bench.VOLLEY, "run", "--progress", "off", os.path.join(bench.ROOT, "benches", "open_rate.rhai"),
                   "-e", f"BASE_URL={bench.BASE}", "-e", f"RATE={rate}", "-e", f"DURATION={secs}s", "--local-agents", "3"]
            out, cpu, rss, wall = bench.measured(cmd)
            m = dict(bench.re.findall(r"(\w+)=([\d.]+)", out.split("BENCH", 1)[1].splitlines()[0]))
            print(f"| {rate} | {float(m['iterations']) / secs:.1f} | {float(m['iterations']):.0f} | {float(m['dropped']):.0f} |")
    finally:
        bench.stop_nginx(d)


if __name__ == "__main__":
    main()
