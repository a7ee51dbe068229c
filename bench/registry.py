#!/usr/bin/env python3
"""Ten thousand handlers: what registering them costs `nexus serve`.

Registers N distinct handlers over HTTP (every 100th a 100 KB source, the
rest small), then reports the time to register them, the resident memory
each costs beyond the bytecode the registry holds (which max_registry_bytes
bounds), the time of a handler's first call against a repeated one, and the
time to list them all a page at a time. Snapshots are off, so no component
is built: the figures are the registry's own.

usage: python3 bench/registry.py NEXUS_BINARY [N]
"""

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

PORT = 18097


def request(conn, method, path, body=b""):
    conn.request(method, path, body=body)
    reply = conn.getresponse()
    return reply.status, reply.read()


def rss(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def source(i):
    if i % 100 == 0:
        # About 100 KB: many small functions, as a bundle has.
        body = "\n".join(f"function f{j}(x) {{ return x * {j} + {i}; }}" for j in range(2500))
        return f"{body}\nexport default (ctx) => ({{ i: {i}, v: f7(ctx.n || 1) }});\n"
    return f"export default (ctx) => ({{ i: {i}, n: ctx.n }});\n"


def main():
    nexus, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    work = tempfile.mkdtemp()
    server = subprocess.Popen(
        [nexus, "serve", "--listen", f"127.0.0.1:{PORT}", "--cache-dir", f"{work}/cache",
         "--snapshot", "off", "--max-handlers", str(max(n, 10_000))],
        stdout=subprocess.DEVNULL, stderr=open(f"{work}/log", "w"),
        env={**os.environ, "NEXUS_LOG": "warn"})
    try:
        for _ in range(600):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
                if request(conn, "GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        # Registrations and calls first, small and large, then removed: the
        # guest's, the engine's and the allocator's first-use memory is not
        # the registry's.
        for i in range(200):
            request(conn, "PUT", f"/handlers/warm{i}", source(i).encode())
            request(conn, "POST", f"/handlers/warm{i}/invoke", b"{}")
        for i in range(200):
            request(conn, "DELETE", f"/handlers/warm{i}")
        time.sleep(1)
        # RSS at half and at all of them: the slope between is what a
        # registration holds, whatever the process held before it.
        before = rss(server.pid)
        half = n // 2
        start = time.perf_counter()
        for i in range(n):
            status, body = request(conn, "PUT", f"/handlers/h{i:05}", source(i).encode())
            assert status == 201, (i, status, body)
            if i + 1 == half:
                time.sleep(1)
                at_half = rss(server.pid)
                paused = 1
        took = time.perf_counter() - start - paused
        time.sleep(1)
        after = rss(server.pid)

        # The bytecode the registry holds, a page at a time.
        held, held_second_half, listed, after_name = 0, 0, 0, None
        start = time.perf_counter()
        while True:
            query = "/handlers?limit=1000" + (f"&after={after_name}" if after_name else "")
            status, body = request(conn, "GET", query)
            page = json.loads(body)
            held += sum(h["bytecode_bytes"] for h in page["handlers"])
            held_second_half += sum(h["bytecode_bytes"] for h in page["handlers"]
                                    if int(h["name"][1:]) >= half)
            listed += len(page["handlers"])
            after_name = page["next"]
            if after_name is None:
                break
        listing = time.perf_counter() - start

        # A first call (its handler never called: its instance and the
        # shared guest's pages for it are new) against a repeated one.
        firsts, repeats = [], []
        for i in range(1, n, max(1, n // 200)):
            if i % 100 == 0:
                continue
            path = f"/handlers/h{i:05}/invoke"
            for samples in (firsts, repeats):
                t = time.perf_counter()
                status, _ = request(conn, "POST", path, b'{"n":2}')
                samples.append((time.perf_counter() - t) * 1e6)
                assert status == 200

        per_handler = (after - at_half - held_second_half) / (n - half)
        print("| handlers | registering | per second | RSS: start, half, all | bytecode held | RSS per handler beyond its bytecode (second half) | listing all (pages of 1000) |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {n} ({n // 100} of 100 KB) | {took:.1f} s | {n / took:.0f} "
              f"| {before / 2**20:.1f}, {at_half / 2**20:.1f}, {after / 2**20:.1f} MiB "
              f"| {held / 2**20:.1f} MiB | {per_handler:.0f} B | {listing * 1000:.0f} ms ({listed} listed) |")
        print()
        print(f"first call median {statistics.median(firsts):.0f} µs, repeated {statistics.median(repeats):.0f} µs "
              f"({len(firsts)} handlers; HTTP round trip included)")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
