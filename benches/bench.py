#!/usr/bin/env python3
"""volley's benchmark: side by side in one run against one local nginx.

  python3 benches/bench.py            # full run (about 2 minutes)
  python3 benches/bench.py --quick    # shorter durations

Prints: CPU microseconds per request and peak RSS for volley and wrk at 50
connections; volley's RSS at 1,000 and 10,000 VUs (each looping a GET and a 1 s
sleep); achieved vs target rate of an open model at 100/s, 1,000/s and 10,000/s.
Needs nginx and wrk (apt-get install -y nginx wrk) and a release build
(cargo build --release --locked). Load goes to 127.0.0.1 only.
"""
import os, re, resource, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLLEY = os.path.join(ROOT, "target", "release", "volley")
PORT = 18089
BASE = f"http://127.0.0.1:{PORT}"
QUICK = "--quick" in sys.argv


def start_nginx():
    d = tempfile.mkdtemp(prefix="volley-bench-nginx-")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
worker_rlimit_nofile 65000;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 30000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{PORT} backlog=16384; location / {{ return 200 "ok"; }} }}
}}
""")
    subprocess.run(["nginx", "-c", conf, "-p", d], check=True)
    time.sleep(0.3)
    return d


def stop_nginx(d):
    subprocess.run(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d, "-s", "stop"], check=False)
    shutil.rmtree(d, ignore_errors=True)


def measured(cmd, env=None):
    """Runs cmd; returns (stdout, cpu_seconds, peak_rss_mib, wall_s) of that child alone."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode not in (0, 99):
        print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"command failed ({out.returncode}): {' '.join(cmd)}")
    return out.stdout, cpu, after.ru_maxrss / 1024.0, wall


def volley(script, workers=None, **env_vars):
    args = [VOLLEY, "run", "--progress", "off", os.path.join(ROOT, "benches", script), "-e", f"BASE_URL={BASE}"]
    if workers:
        args += ["--workers", str(workers)]
    for k, v in env_vars.items():
        args += ["-e", f"{k}={v}"]
    out, cpu, rss, wall = measured(args)
    m = dict(re.findall(r"(\w+)=([\d.]+)", out.split("BENCH", 1)[1].splitlines()[0]))
    return {k: float(v) for k, v in m.items()}, cpu, rss, wall


def main():
    if not os.path.exists(VOLLEY):
        raise SystemExit("build first: cargo build --release --locked")
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y nginx wrk")
    secs = 5 if QUICK else 10
    d = start_nginx()
    try:
        print(f"# volley benchmark against nginx on {BASE} ({os.cpu_count()} cores)\n")
        print("## CPU per request at 50 connections (lower is better)")
        print(f"| tool | requests | req/s | CPU us/request | peak RSS MiB |\n|---|---|---|---|---|")
        out, cpu, rss, wall = measured(["wrk", "-t1", "-c50", f"-d{secs}s", BASE + "/"])
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        wrk_us = cpu / reqs * 1e6
        print(f"| wrk -t1 -c50 | {reqs} | {reqs / secs:.0f} | {wrk_us:.2f} | {rss:.1f} |")
        ratios = []
        for workers in (1, 2):
            m, cpu, rss, wall = volley("http_loop.rhai", workers=workers, VUS=50, DURATION=f"{secs}s")
            v_us = cpu / m["requests"] * 1e6
            ratios.append(f"{workers} worker(s) {v_us / wrk_us:.2f}x")
            print(f"| volley --workers {workers}, 50 VUs | {m['requests']:.0f} | {m['requests'] / m['elapsed_s']:.0f} | {v_us:.2f} | {rss:.1f} |")
        print(f"\nvolley / wrk CPU per request: {', '.join(ratios)}\n")

        print("## Memory at many VUs (each loops a GET and a 1 s sleep)")
        print("| VUs | iterations | failed | peak RSS MiB | RSS per VU KiB |\n|---|---|---|---|---|")
        for vus in (1000, 10000):
            m, cpu, rss, wall = volley("http_loop.rhai", VUS=vus, SLEEP_MS=1000, DURATION=f"{secs}s")
            print(f"| {vus} | {m['iterations']:.0f} | {m['failed']:.0f} | {rss:.1f} | {rss * 1024 / vus:.1f} |")

        print("\n## Open model: achieved vs target rate")
        print("| target/s | achieved/s | iterations | dropped | p99 iteration ms |\n|---|---|---|---|---|")
        for rate in (100, 1000, 10000):
            m, cpu, rss, wall = volley("open_rate.rhai", RATE=rate, DURATION=f"{secs // 2}s")
            print(f"| {rate} | {m['iterations'] / (secs // 2):.1f} | {m['iterations']:.0f} | {m['dropped']:.0f} | {m['p99']:.2f} |")
    finally:
        stop_nginx(d)


if __name__ == "__main__":
    main()
