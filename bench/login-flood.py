#!/usr/bin/env python3
"""Login-flood benchmark: what unauthenticated bad logins cost the server.

Usage:  python3 bench/login-flood.py [GENAI_BIN]      (default target/release/genai)

Starts the binary on a fresh SQLite database and measures, printing one line each:
1. memory: the server's resident set size (VmRSS) before and after 180 failed logins whose
   email is about 1 MB (the probe of issue 7, §3.1);
2. latency: GET /healthz, one request every 10 ms for 6 s, first with nothing else going on,
   then while 8 clients send wrong passwords as fast as they can (each from its own 127.0.x.y
   address and with a new email each time, so no throttle spares the server any hashing):
   p50 and p99 (issue 7, §3.4).
Nothing is asserted: these are figures to compare (bench/README.md records them).
"""

import http.client
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BIN = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("GENAI_BIN", "target/release/genai")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def start():
    tmp = tempfile.mkdtemp(prefix="genai-login-flood-")
    out = open(os.path.join(tmp, "out"), "wb")
    env = dict(os.environ, GENAI_OPERATOR_TOKEN=secrets.token_hex(24), GENAI_LOG="error")
    proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--database", f"sqlite://{tmp}/db.sqlite"],
                            env=env, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    for _ in range(600):
        m = re.search(r"listening on http://([\d.]+):(\d+)", open(out.name).read())
        if m:
            return proc, m.group(1), int(m.group(2))
        time.sleep(0.1)
    sys.exit("the server did not start")


class LoginClient:
    """One browser-like client: fetches the login form once, then posts to it."""

    def __init__(self, host, port, source="127.0.0.1"):
        self.conn = http.client.HTTPConnection(host, port, timeout=120, source_address=(source, 0))
        self.conn.request("GET", "/login")
        r = self.conn.getresponse()
        page = r.read().decode()
        self.cookie = next(v.split(";")[0] for k, v in r.getheaders()
                           if k.lower() == "set-cookie" and v.startswith("genai_login_csrf="))
        self.csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def post(self, email, password="wrong password"):
        body = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": self.csrf, "next": "/"})
        # A server that refused a large body closes the connection: the retry goes on a new one.
        for _ in range(2):
            try:
                self.conn.request("POST", "/login", body=body, headers={
                    "Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie})
                r = self.conn.getresponse()
                r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                return r.status
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
        return None


def healthz_latencies(host, port, seconds=6.0):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    out = []
    stop = time.time() + seconds
    while time.time() < stop:
        t = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        out.append((time.perf_counter() - t) * 1000)
        time.sleep(0.01)
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def main():
    proc, host, port = start()
    try:
        before = rss_kib(proc.pid)
        c = LoginClient(host, port)
        statuses = {}
        for i in range(180):
            s = c.post(f"{i}{'a' * 1_000_000}@example.com")
            statuses[s] = statuses.get(s, 0) + 1
        time.sleep(1)
        after = rss_kib(proc.pid)
        print(f"memory: VmRSS {before / 1024:.0f} MiB before, {after / 1024:.0f} MiB after 180 failed logins "
              f"with ~1 MB emails (answers: {statuses})")

        quiet = healthz_latencies(host, port)
        stop = threading.Event()
        counts = []

        def flood(n):
            client = LoginClient(host, port, source=f"127.0.{n + 10}.1")
            k = 0
            while not stop.is_set():
                client.post(f"flood{n}-{k}-{secrets.token_hex(4)}@example.com")
                k += 1
            counts.append(k)

        threads = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        time.sleep(1)
        loaded = healthz_latencies(host, port)
        stop.set()
        for t in threads:
            t.join()
        print(f"healthz alone:       p50 {pct(quiet, 50):.2f} ms, p99 {pct(quiet, 99):.2f} ms ({len(quiet)} requests)")
        print(f"healthz, 8 flooders: p50 {pct(loaded, 50):.2f} ms, p99 {pct(loaded, 99):.2f} ms ({len(loaded)} requests; "
              f"{sum(counts)} bad logins answered, mean {statistics.mean(counts):.0f} per client)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
