#!/usr/bin/env python3
"""volley's benchmark: side by side in one run against one local nginx.

  python3 benches/bench.py            # full run (about 5 minutes)
  python3 benches/bench.py --quick    # shorter durations, one round
  python3 benches/bench.py --rounds 3 # median of 3 rounds (the default without --quick)

Prints, for concurrency 50, 1,000 and 5,000: requests/s and CPU microseconds per
request (user+sys of the generator / requests counted by nginx's stub_status) for
volley, oha and wrk, and the ratios volley/oha and volley/wrk (each round runs the
tools back to back, a different one first; a ratio is the median of the rounds' own
ratios, with their range, since a shared machine drifts between rounds); volley's peak RSS at
10,000 and 15,000 VUs (each looping a GET and a 1 s sleep) and at 50,000 VUs (a 1 s
sleep, no connection); achieved vs target rate of an open model at 100/s, 1,000/s and 10,000/s.
Needs nginx and wrk (apt-get install -y nginx-light wrk), oha (cargo install oha
--locked; skipped with a note when missing) and a release build (cargo build --release
--locked). Load goes to 127.0.0.1 only.
"""
import os, re, resource, shutil, statistics, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOLLEY = os.path.join(ROOT, "target", "release", "volley")
PORT = 18089
BASE = f"http://127.0.0.1:{PORT}"
QUICK = "--quick" in sys.argv
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else (1 if QUICK else 3)


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
  server {{
    listen 127.0.0.1:{PORT} backlog=16384;
    location = /nginx_status {{ stub_status; }}
    location / {{ return 200 "ok"; }}
  }}
}}
""")
    subprocess.run(["nginx", "-c", conf, "-p", d], check=True)
    time.sleep(0.3)
    return d


def stop_nginx(d):
    subprocess.run(["nginx", "-c", os.path.join(d, "nginx.conf"), "-p", d, "-s", "stop"], check=False)
    shutil.rmtree(d, ignore_errors=True)


def served():
    """Requests nginx has answered so far (its stub_status counter, minus this read)."""
    text = urllib.request.urlopen(BASE + "/nginx_status", timeout=5).read().decode()
    return int(text.split("\n")[2].split()[2])


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def measured(cmd, env=None):
    """Runs cmd; returns (stdout, cpu_seconds, peak_rss_mib, wall_s) of that process alone
    (its own rusage from wait4, not the running maximum over all children)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile(mode="w+") as out, tempfile.TemporaryFile(mode="w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env, preexec_fn=raise_nofile)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    cpu = usage.ru_utime + usage.ru_stime
    if p.returncode not in (0, 99):
        print(stdout[-2000:], stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"command failed ({p.returncode}): {' '.join(cmd)}")
    return stdout, cpu, usage.ru_maxrss / 1024.0, wall


def volley(script, workers=None, **env_vars):
    args = [VOLLEY, "run", "--progress", "off", os.path.join(ROOT, "benches", script), "-e", f"BASE_URL={BASE}"]
    if workers:
        args += ["--workers", str(workers)]
    for k, v in env_vars.items():
        args += ["-e", f"{k}={v}"]
    out, cpu, rss, wall = measured(args)
    m = dict(re.findall(r"(\w+)=([\d.]+)", out.split("BENCH", 1)[1].splitlines()[0]))
    return {k: float(v) for k, v in m.items()}, cpu, rss, wall


def by_server(cmd):
    """Runs a generator; returns (requests nginx served, CPU s, peak RSS MiB, wall s)."""
    before = served()
    out, cpu, rss, wall = measured(cmd)
    return served() - before - 1, cpu, rss, wall, out


def generators(c, secs):
    """The commands that hold c connections for secs seconds, by tool."""
    cmds = {
        "volley": [VOLLEY, "run", "--progress", "off", os.path.join(ROOT, "benches", "http_loop.rhai"),
                   "-e", f"BASE_URL={BASE}", "-e", f"VUS={c}", "-e", f"DURATION={secs}s"],
        "wrk": ["wrk", f"-t{min(2, os.cpu_count())}", f"-c{c}", f"-d{secs}s", BASE + "/"],
    }
    if shutil.which("oha"):
        cmds["oha"] = ["oha", "--no-tui", "-z", f"{secs}s", "-c", str(c), BASE + "/"]
    return cmds


def ratio(paired, other, i):
    """volley's figure i over another tool's, as the median of each round's own ratio
    (both measured back to back in that round), with the range: "1.12 (1.05-1.20)"."""
    r = sorted(p["volley"][i] / p[other][i] for p in paired if other in p and p[other][i] > 0)
    if not r:
        return "n/a"
    return f"{statistics.median(r):.2f}" + (f" ({r[0]:.2f}-{r[-1]:.2f})" if len(r) > 1 else "")


def main():
    if not os.path.exists(VOLLEY):
        raise SystemExit("build first: cargo build --release --locked")
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: apt-get install -y nginx-light wrk")
    secs = 5 if QUICK else 10
    d = start_nginx()
    try:
        print(f"# volley benchmark against nginx on {BASE} ({os.cpu_count()} cores, median of {ROUNDS} rounds)\n")
        if not shutil.which("oha"):
            print("oha is missing (cargo install oha --locked): its columns are skipped\n")
        print("## Requests/s and CPU per request (lower is better), side by side")
        print("| connections | tool | requests/s | CPU us/request | peak RSS MiB |\n|---|---|---|---|---|")
        summary = []
        for c in (50, 1000, 5000):
            runs, paired = {}, []
            for r in range(ROUNDS):
                # The tools take turns, and each round starts with a different one: on a
                # shared machine the speed drifts by tens of percent within minutes, so a
                # ratio is taken between runs of the same round (back to back), never
                # between medians of runs far apart.
                cmds = list(generators(c, secs).items())
                cmds = cmds[r % len(cmds):] + cmds[:r % len(cmds)]
                this = {}
                for tool, cmd in cmds:
                    reqs, cpu, rss, wall, _ = by_server(cmd)
                    this[tool] = (reqs / secs, cpu / max(reqs, 1) * 1e6, rss)
                    runs.setdefault(tool, []).append(this[tool])
                paired.append(this)
            med = {t: tuple(statistics.median(x[i] for x in r) for i in range(3)) for t, r in runs.items()}
            for tool, (rps, us, rss) in med.items():
                print(f"| {c} | {tool} | {rps:.0f} | {us:.2f} | {rss:.1f} |")
            summary.append(f"| {c} | {ratio(paired, 'oha', 1)} | {ratio(paired, 'wrk', 1)} | {ratio(paired, 'oha', 0)} |")
        print("\n| connections | CPU/request volley/oha | CPU/request volley/wrk | requests/s volley/oha |\n|---|---|---|---|")
        print("\n".join(summary))
        if ROUNDS > 1:
            print(f"\n(each ratio: the median of the {ROUNDS} rounds' own ratios, their range in brackets)")

        print("\n## Memory at many VUs")
        print("| VUs | scenario | iterations | failed | peak RSS MiB | RSS per VU KiB |\n|---|---|---|---|---|---|")
        # 15,000 connected VUs: under this machine's hard limit of 20,000 open files.
        memory_runs = ((10000, "http_loop.rhai", {"SLEEP_MS": 1000}), (15000, "http_loop.rhai", {"SLEEP_MS": 1000}),
                       (50000, "sleep_loop.rhai", {}))
        for vus, script, extra in memory_runs:
            try:
                m, cpu, rss, wall = volley(script, VUS=vus, DURATION=f"{secs}s", **extra)
                what = "GET + 1 s sleep" if script == "http_loop.rhai" else "1 s sleep, no connection"
                print(f"| {vus} | {what} | {m['iterations']:.0f} | {m['failed']:.0f} | {rss:.1f} | {rss * 1024 / vus:.1f} |")
            except SystemExit as e:
                print(f"| {vus} | {script} | failed: {e} | | | |")

        print("\n## Open model: achieved vs target rate")
        print("| target/s | achieved/s | iterations | dropped | p99 iteration ms |\n|---|---|---|---|---|")
        for rate in (100, 1000, 10000):
            m, cpu, rss, wall = volley("open_rate.rhai", RATE=rate, DURATION=f"{secs // 2}s")
            print(f"| {rate} | {m['iterations'] / (secs // 2):.1f} | {m['iterations']:.0f} | {m['dropped']:.0f} | {m['p99']:.2f} |")
    finally:
        stop_nginx(d)


if __name__ == "__main__":
    main()
