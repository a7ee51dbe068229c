//! A `nexus serve` child process on an ephemeral loopback port, and a
//! small HTTP/1.1 client that can also send what no proper client would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `nexus serve` child process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The `curl` lines it printed on start, to paste in order.
    pub curl: Vec<String>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// The thread reading stderr into `stderr`; joined by [`Server::wait`].
    reader: Option<std::thread::JoinHandle<()>>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Server {
    /// Starts `nexus serve` on 127.0.0.1:0 with `args`, and its cache in
    /// `cache`; waits until it says where it listens.
    pub fn start(cache: &Path, args: &[&str]) -> Server {
        Self::start_with(cache, args, &[])
    }

    pub fn start_with(cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(Command::new(env!("CARGO_BIN_EXE_nexus")), cache, args, env)
    }

    /// As [`start_with`](Self::start_with), through `nexus`: a command
    /// that runs the binary and takes `serve …` as its arguments (such as
    /// `setpriv … /path/to/nexus`).
    pub fn launch(mut nexus: Command, cache: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        nexus.arg("serve");
        // On loopback, unless the test says where.
        if !args.contains(&"--listen") {
            nexus.args(["--listen", "127.0.0.1:0"]);
        }
        let mut child = nexus
            .arg("--cache-dir")
            .arg(cache)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("NEXUS_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nexus serve");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let url = first
            .trim()
            .strip_prefix("nexus serve: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
        let mut addr: SocketAddr = url.parse().unwrap();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        // With no handler yet, a line registering one comes first.
        let mut curl = Vec::new();
        loop {
            let mut line = String::new();
            stdout.read_line(&mut line).unwrap();
            let line = line.trim().to_owned();
            let registers = line.starts_with("curl -s -X PUT http://");
            assert!(registers || line.starts_with("curl -s http://"), "{line:?}");
            curl.push(line);
            if !registers {
                break;
            }
        }
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        let mut pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Server {
            child,
            addr,
            curl,
            stderr,
            reader: Some(reader),
        }
    }

    /// Waits (up to two minutes: the first start compiles the guest) for
    /// `/readyz` to answer 200.
    pub fn ready(self) -> Server {
        let start = Instant::now();
        loop {
            let reply = self.request("GET", "/readyz", b"");
            if reply.status == 200 {
                return self;
            }
            assert_eq!(reply.status, 503, "{reply:?}");
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "never ready: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The log, once it holds `text` (lines reach it from a reader
    /// thread, a moment after the server wrote them); panics after a minute.
    pub fn log_with(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the log never said {text:?}: {log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Reply {
        self.request_with(method, path, "", body)
    }

    /// [`request`](Self::request) with `headers` too, each line ending
    /// in `\r\n`.
    pub fn request_with(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> Reply {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut raw = head.into_bytes();
        raw.extend_from_slice(body);
        self.raw(&raw, false).expect("an HTTP answer")
    }

    /// Sends `raw` bytes as they are, then closes the sending side if
    /// `hang_up` (a client that gives up mid-request); reads the answer, if
    /// any.
    pub fn raw(&self, raw: &[u8], hang_up: bool) -> Option<Reply> {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let _ = stream.write_all(raw);
        if hang_up {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        read_reply(&mut stream)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.pid(), "TERM");
        self.wait()
    }

    /// Waits for the process to exit by itself, and for its log to be
    /// read to the end.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }

    /// Waits (up to a minute) until at least `n` invocations are running,
    /// as `nexus_instances_active` reports: a request sent from another
    /// thread is then in flight, however slow the machine.
    pub fn wait_for_active(&self, n: u32) {
        let start = Instant::now();
        loop {
            let metrics = self.request("GET", "/metrics", b"").text();
            if sample(&metrics, "nexus_instances_active") >= f64::from(n) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "never {n} active: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Reads one HTTP/1.1 response: the status, the headers and the body
/// (content-length, chunked, or up to the close).
pub fn read_reply(stream: &mut impl Read) -> Option<Reply> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut rest = raw[end + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut body = Vec::new();
        while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?.trim(), 16)
                    .ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(rest.get(line_end + 2..line_end + 2 + size)?);
            rest = rest.get(line_end + 4 + size..)?.to_vec();
        }
        rest = body;
    }
    Some(Reply {
        status,
        headers,
        body: rest,
    })
}

/// A ready server with `files` as its `--handlers` and `args`, each in a
/// directory of its own that lives as long as it.
pub struct Running {
    server: Server,
    _cache: tempfile::TempDir,
    _handlers: tempfile::TempDir,
}

impl std::ops::Deref for Running {
    type Target = Server;
    fn deref(&self) -> &Server {
        &self.server
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Server {
        &mut self.server
    }
}

pub fn serve(files: &[(&str, &str)], args: &[&str]) -> Running {
    let cache = tempfile::tempdir().unwrap();
    let handlers = handlers_dir(files);
    let mut all = vec!["--handlers", handlers.path().to_str().unwrap()];
    all.extend_from_slice(args);
    Running {
        server: Server::start(cache.path(), &all).ready(),
        _cache: cache,
        _handlers: handlers,
    }
}

pub fn handlers_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in files {
        std::fs::write(dir.path().join(name), source).unwrap();
    }
    dir
}

/// The value of one sample in Prometheus text, `name{labels}` as written.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
        .parse()
        .unwrap()
}

/// `GET path` from any HTTP server on `addr` (Prometheus, in the deploy
/// tests), with the same client as [`Server::request`].
pub fn get(addr: SocketAddr, path: &str) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let head = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    read_reply(&mut stream)
}
