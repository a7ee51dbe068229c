//! What operators run against Nexus, checked with the real tools: the
//! manifests against the Kubernetes API schemas (`kubernetes-validate`), a
//! scrape through `promtool check metrics`, every alerting rule and
//! dashboard expression through `promtool check rules` and against the
//! families a real scrape has, and a real Prometheus scraping `nexus serve`
//! as the Deployment's annotations say.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::deploy::{kubernetes_dir, object, rendered};
use crate::support::server::{get, serve, Running};

fn deploy_dir() -> std::path::PathBuf {
    kubernetes_dir().join("..")
}

#[test]
fn the_rendered_manifests_validate_against_the_kubernetes_api_schemas() {
    let yaml = Command::new("kubectl")
        .arg("kustomize")
        .arg(kubernetes_dir())
        .output()
        .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &yaml.stdout).unwrap();
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "-k", "1.32.0", "--strict"])
        .arg(file.path())
        .output()
        .expect("python3 -m kubernetes_validate (scripts/setup.sh installs it)");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report.matches("passed for resource").count(), 6, "{report}");
}

/// A server with the example handler, called once.
fn scraped() -> (Running, String) {
    let hello = std::fs::read_to_string(deploy_dir().join("kubernetes/handlers/hello.js")).unwrap();
    let server = serve(&[("hello.js", &hello)], &[]);
    assert_eq!(
        server
            .request("POST", "/handlers/hello/invoke", b"{}")
            .status,
        200
    );
    let text = server.request("GET", "/metrics", b"").text();
    (server, text)
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/setup.sh installs it)");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The `nexus_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("nexus_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.push(name);
    }
    names
}

fn dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(deploy_dir().join("grafana/nexus.json")).unwrap())
        .unwrap()
}

/// Every `expr` in the dashboard (a row has none), and the handler
/// variable's query.
fn dashboard_exprs() -> Vec<String> {
    let dashboard = dashboard();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 22, "{exprs:?}");
    let variable = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "handler")
        .expect("a handler variable");
    let query = variable["query"]["query"].as_str().unwrap();
    let metric = query
        .strip_prefix("label_values(")
        .and_then(|q| q.strip_suffix(", handler)"))
        .expect("label_values(METRIC, handler)");
    exprs.push(metric.to_owned());
    exprs
}

#[test]
fn the_dashboard_has_a_per_handler_row_filtered_by_the_handler_variable() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().unwrap();
    let row = panels
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "Per handler")
        .expect("a per-handler row");
    let below = &panels[row + 1..];
    let exprs: Vec<&str> = below
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .filter_map(|t| t["expr"].as_str())
        .filter(|e| e.contains("nexus_handler_") && !e.contains("folded"))
        .collect();
    assert!(exprs.len() >= 6, "{exprs:?}");
    for expr in &exprs {
        assert!(expr.contains(r#"handler=~"$handler""#), "{expr}");
    }
    let titles: Vec<&str> = below.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in ["error ratio", "p99", "call rate", "Console lines"] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "{wanted}: {titles:?}"
        );
    }
}

#[test]
fn promtool_passes_a_scrape_and_every_rule_and_panel_uses_real_families() {
    let (_server, scrape) = scraped();
    let (ok, lint) = promtool(&["check", "metrics"], Some(&scrape));
    assert!(ok, "promtool check metrics:\n{lint}");

    let rules = deploy_dir().join("prometheus/rules.yaml");
    let (ok, report) = promtool(&["check", "rules", rules.to_str().unwrap()], None);
    assert!(ok && report.contains("SUCCESS: 10 rules found"), "{report}");
    // The names below are checked against a scrape with per-handler series.
    assert!(
        sample(
            &scrape,
            r#"nexus_handler_invocations_total{handler="hello",outcome="ok"}"#
        ) >= 1.0,
        "{scrape}"
    );

    // The dashboard's expressions, as recording rules promtool parses.
    let exprs = dashboard_exprs();
    let mut generated = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        generated.push_str(&format!(
            "      - record: nexus_dashboard:panel{i}\n        expr: {}\n",
            serde_json::to_string(expr).unwrap()
        ));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &generated).unwrap();
    let (ok, report) = promtool(&["check", "rules", file.path().to_str().unwrap()], None);
    assert!(ok, "the dashboard's PromQL:\n{report}\n{generated}");

    let rules_text = std::fs::read_to_string(&rules).unwrap();
    let families: Vec<&str> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut used: Vec<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    used.extend(metric_names(&rules_text));
    used.sort();
    used.dedup();
    for name in &used {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| families.contains(f))
            .unwrap_or(name);
        assert!(
            families.contains(&family),
            "{name} is used but not in a scrape: {families:?}"
        );
    }
    assert!(used.len() >= 18, "{used:?}");
}

/// A Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` at `path` every second, with the alerting rules.
    fn start(target: SocketAddr, path: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = deploy_dir().join("prometheus/rules.yaml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: nexus\n    metrics_path: {path}\n    \
             static_configs:\n      - targets: ['{target}']\n",
            rules.canonicalize().unwrap().display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        // A free port: taken, noted, let go.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package; scripts/setup.sh installs it)");
        let prometheus = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        prometheus.wait_for(|| get(addr, "/-/ready").is_some_and(|r| r.status == 200));
        prometheus
    }

    fn wait_for(&self, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while !ready() {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "Prometheus never got there"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The value of an instant query with one series.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let reply = get(self.addr, &format!("/api/v1/query?query={encoded}"))?;
        let answer: Value = serde_json::from_slice(&reply.body).ok()?;
        let result = answer["data"]["result"].as_array()?;
        (result.len() == 1).then(|| result[0]["value"][1].as_str()?.parse().ok())?
    }
}

fn sample(scrape: &str, series: &str) -> f64 {
    crate::support::server::sample(scrape, series)
}

#[test]
fn a_real_prometheus_scrapes_nexus_as_the_annotations_say() {
    let objects = rendered();
    let annotations =
        &object(&objects, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    let path = annotations["prometheus.io/path"].as_str().unwrap();

    let (server, _) = scraped();
    for _ in 0..4 {
        assert_eq!(
            server
                .request("POST", "/handlers/hello/invoke", br#"{"name":"p"}"#)
                .status,
            200
        );
    }
    let prometheus = Prometheus::start(server.addr, path);
    prometheus
        .wait_for(|| prometheus.query(r#"nexus_invocations_total{outcome="ok"}"#) == Some(5.0));

    let scrape = server.request("GET", path, b"").text();
    let hit_rate = r#"nexus_cache_hit_rate{artifact="bytecode"}"#;
    let expected = sample(&scrape, hit_rate);
    let through_prometheus = prometheus.query(hit_rate).unwrap();
    assert!(
        (through_prometheus - expected).abs() < 1e-9,
        "{through_prometheus} vs {expected}"
    );
    assert_eq!(prometheus.query("up"), Some(1.0));
    // A per-handler series, by its handler label.
    let hello = r#"nexus_handler_invocations_total{handler="hello",outcome="ok"}"#;
    prometheus.wait_for(|| prometheus.query(hello) == Some(5.0));
    assert_eq!(
        prometheus.query(r#"count(nexus_handler_info{handler="hello"})"#),
        Some(1.0)
    );

    // The alerting rules loaded and evaluate against these series.
    let rules = get(prometheus.addr, "/api/v1/rules").unwrap();
    let rules: Value = serde_json::from_slice(&rules.body).unwrap();
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(loaded.len(), 10, "{rules}");
    assert!(loaded.iter().all(|r| r["health"] != "err"), "{rules}");
}
