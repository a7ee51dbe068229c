"""Good traffic under a hostile mix, against one `nexus serve` binary.

    python3 bench/hostile.py NEXUS_BINARY [SECONDS]

Starts the server on a free loopback port with two handlers (`double`, a
trivial one, and `loop`, which never returns) and short timeouts, then
measures two good callers (one connection a call, as a client without
keep-alive):

- quiet: alone, for SECONDS (default 10);
- mix: beside abandoned looping calls (each caller gives up after 100 ms),
  50 connections sending headers a byte every 500 ms, two clients sending
  15 MiB inputs, and one registering 5 000-function sources in turn.

Prints a markdown table of the good calls' percentiles and their ratio to
the quiet ones, what the mix got, the process's peak RSS growth, and the
sockets still open after. The same mix as the `serve::hostile` test, at a
length and build of one's choosing.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

HEAD_SLOW = b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: "


def percentile(times, p):
    times = sorted(times)
    return times[round((len(times) - 1) * p)]


def call(port, path, body, method="POST"):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(
        b"%s %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % (method.encode(), path.encode(), len(body))
        + body
    )
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]) if data else 0


def good(port, stop, out):
    n = 0
    while not stop.is_set():
        n += 1
        start = time.perf_counter()
        status = call(port, "/handlers/double/invoke", b'{"n":%d}' % n)
        out.append((status, time.perf_counter() - start))


def abandoned(port, stop, counts):
    while not stop.is_set():
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /handlers/loop/invoke HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
        s.settimeout(0.1)
        try:
            s.recv(64)
        except OSError:
            pass
        s.close()
        counts["abandoned"] += 1


def slow_headers(port, stop, counts):
    conns = [[socket.create_connection(("127.0.0.1", port)), 0] for _ in range(50)]
    counts["slow opened"] += 50
    while not stop.is_set():
        for entry in conns:
            try:
                entry[0].sendall(HEAD_SLOW[entry[1] % len(HEAD_SLOW)].to_bytes(1, "big"))
                entry[1] += 1
            except OSError:
                counts["slow closed by the server"] += 1
                counts["slow opened"] += 1
                entry[0] = socket.create_connection(("127.0.0.1", port))
                entry[1] = 0
        time.sleep(0.5)
    for entry in conns:
        entry[0].close()


def bodies(port, stop, counts):
    body = b'{"n":1}' + b" " * (15 * 1024 * 1024 - 7)
    while not stop.is_set():
        try:
            status = call(port, "/handlers/double/invoke", body)
        except OSError:
            status = 0
        counts["15 MiB inputs %s" % (status or "cut off")] += 1


def puts(port, stop, counts):
    i = 0
    while not stop.is_set():
        source = "".join(
            "function f%d(a) { return a + %d + %d }\n" % (f, f, i) for f in range(5000)
        ) + "export default () => f1(1)"
        status = call(port, "/handlers/big%d" % (i % 3), source.encode(), "PUT")
        counts["5000-function PUTs %d" % status] += 1
        i += 1


def peak_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) * 1024


def sockets(pid):
    fds = "/proc/%d/fd" % pid
    return sum(
        1 for fd in os.listdir(fds) if os.readlink(os.path.join(fds, fd)).startswith("socket:")
    )


def run(port, seconds, hostile):
    stop = threading.Event()
    counts = {}

    class Counts(dict):
        def __missing__(self, key):
            return 0

    counts = Counts()
    results = [[], []]
    threads = [threading.Thread(target=good, args=(port, stop, r)) for r in results]
    if hostile:
        threads += [
            threading.Thread(target=abandoned, args=(port, stop, counts)),
            threading.Thread(target=slow_headers, args=(port, stop, counts)),
            threading.Thread(target=bodies, args=(port, stop, counts)),
            threading.Thread(target=bodies, args=(port, stop, counts)),
            threading.Thread(target=puts, args=(port, stop, counts)),
        ]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return results[0] + results[1], counts


def main():
    binary = os.path.abspath(sys.argv[1])
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    work = tempfile.mkdtemp(prefix="nexus-hostile-")
    handlers = os.path.join(work, "handlers")
    os.mkdir(handlers)
    with open(os.path.join(handlers, "double.js"), "w") as f:
        f.write("export default (ctx) => ({ twice: ctx.n * 2 })")
    with open(os.path.join(handlers, "loop.js"), "w") as f:
        f.write("export default () => { for (;;) {} }")
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--cache-dir", os.path.join(work, "cache"),
         "--handlers", handlers, "--timeout-ms", "1000", "--header-timeout-ms", "2000",
         "--body-timeout-ms", "2000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        port = int(server.stdout.readline().strip().rsplit(":", 1)[1])
        while call(port, "/readyz", b"", "GET") != 200:
            time.sleep(0.1)
        idle_sockets = sockets(server.pid)
        quiet, _ = run(port, seconds, False)
        before = peak_rss(server.pid)
        mixed, counts = run(port, seconds, True)
        grown = peak_rss(server.pid) - before
        time.sleep(3)
        open_after = sockets(server.pid)
    finally:
        server.terminate()
        server.wait()

    q = [t for s, t in quiet]
    m = [t for s, t in mixed]
    print("| good calls (2 callers, %g s each) | calls | not 200 | p50 | p99 | p99 / quiet p99 |" % seconds)
    print("|---|---|---|---|---|---|")
    for name, calls, times in (("quiet", quiet, q), ("under the mix", mixed, m)):
        print("| %s | %d | %d | %.2f ms | %.2f ms | %.1fx |" % (
            name, len(calls), sum(1 for s, _ in calls if s != 200),
            percentile(times, 0.5) * 1e3, percentile(times, 0.99) * 1e3,
            percentile(times, 0.99) / percentile(q, 0.99)))
    print()
    for key in sorted(counts):
        print("- %s: %d" % (key, counts[key]))
    print("- peak RSS growth under the mix: %d MiB" % (grown >> 20))
    print("- sockets open 3 s after (idle: %d): %d" % (idle_sockets, open_after))


if __name__ == "__main__":
    main()
