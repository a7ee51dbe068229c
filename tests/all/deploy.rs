//! `deploy/kubernetes`, offline: `kubectl kustomize` renders it, the
//! rendered objects keep the invariants the design asks for (the cache
//! volume, the disk bound below it, the memory arithmetic, probes, ports,
//! security), and `nexus serve` started as the pod starts it (the
//! ConfigMap's `nexus.toml`, the Deployment's environment and user, the
//! image's seed) answers the probes and the scrape, and compiles nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nexus_host::parse_size;
use serde_json::Value;

use crate::support::server::Server;

pub fn kubernetes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kubernetes")
}

/// The rendered objects, as JSON (through `kubectl kustomize`, then
/// PyYAML, both on this machine image).
pub fn rendered() -> Vec<Value> {
    let yaml = Command::new("kubectl")
        .arg("kustomize")
        .arg(kubernetes_dir())
        .output()
        .expect("kubectl is needed to render deploy/kubernetes (see scripts/setup.sh)");
    assert!(
        yaml.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&yaml.stderr)
    );
    let mut python = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML");
    use std::io::Write;
    python
        .stdin
        .take()
        .unwrap()
        .write_all(&yaml.stdout)
        .unwrap();
    let json = python.wait_with_output().unwrap();
    assert!(json.status.success());
    serde_json::from_slice(&json.stdout).unwrap()
}

pub fn object<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

fn quantity(value: &Value) -> u64 {
    parse_size(value.as_str().unwrap()).unwrap()
}

/// The ConfigMap's `nexus.toml`.
fn settings(objects: &[Value]) -> toml::Table {
    let config = objects
        .iter()
        .find(|o| {
            o["kind"] == "ConfigMap"
                && o["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("nexus-config")
        })
        .unwrap();
    config["data"]["nexus.toml"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn size(settings: &toml::Table, key: &str) -> u64 {
    match &settings[key] {
        toml::Value::String(s) => parse_size(s).unwrap(),
        toml::Value::Integer(n) => *n as u64,
        other => panic!("{key} = {other}"),
    }
}

#[test]
fn the_rendered_manifests_keep_the_designs_invariants() {
    let objects = rendered();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "Deployment",
        "Service",
        "ConfigMap",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let settings = settings(&objects);
    let pod = &object(&objects, "Deployment")["spec"]["template"];
    let spec = &pod["spec"];
    let container = &spec["containers"][0];

    // The cache: a memory-backed 128Mi emptyDir at /tmp/nexus-cache, which
    // NEXUS_CACHE_DIR and the config name.
    let named = |list: &'static str, name: &str| {
        let found = spec.get(list).or_else(|| container.get(list));
        found
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
    };
    let volume = named("volumes", "cache");
    assert_eq!(volume["emptyDir"]["medium"], "Memory");
    let volume_bytes = quantity(&volume["emptyDir"]["sizeLimit"]);
    assert_eq!(volume_bytes, 128 << 20);
    let mount = named("volumeMounts", "cache");
    assert_eq!(mount["mountPath"], "/tmp/nexus-cache");
    let env = |name: &str| {
        container["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_owned())
    };
    assert_eq!(env("NEXUS_CACHE_DIR").as_deref(), Some("/tmp/nexus-cache"));
    assert_eq!(settings["cache_dir"].as_str(), Some("/tmp/nexus-cache"));

    // The handlers' ConfigMap is the cluster's registry: updated in place
    // (no hash suffix), mounted as a directory (not a subPath) that the
    // kubelet syncs and the server watches.
    let handlers = named("volumes", "handlers");
    assert_eq!(handlers["configMap"]["name"], "nexus-handlers");
    let mount = named("volumeMounts", "handlers");
    assert!(mount["subPath"].is_null());

    // Management needs a token: the Secret's key, projected read-only as
    // the pod user's own file (0400), where NEXUS_ADMIN_TOKEN_FILE points;
    // not a subPath, so a rotation reaches the running pod.
    let token_file = env("NEXUS_ADMIN_TOKEN_FILE").expect("NEXUS_ADMIN_TOKEN_FILE");
    let tokens = named("volumes", "admin-token");
    assert_eq!(tokens["projected"]["defaultMode"], 0o400);
    let secret = &tokens["projected"]["sources"][0]["secret"];
    assert_eq!(secret["name"], "nexus-admin-token");
    assert!(secret["optional"].is_null(), "the pod waits for its Secret");
    let mount = named("volumeMounts", "admin-token");
    assert_eq!(mount["readOnly"], true);
    assert!(mount["subPath"].is_null());
    let item = &secret["items"][0];
    assert_eq!(
        format!(
            "{}/{}",
            mount["mountPath"].as_str().unwrap(),
            item["path"].as_str().unwrap()
        ),
        token_file
    );

    // The disk bound (in blocks) below the volume; the memory cache 64Mi.
    let disk = size(&settings, "max_disk_cache_bytes");
    assert!(
        disk < volume_bytes,
        "disk bound {disk} not below the volume"
    );
    let cache = size(&settings, "max_cache_size_bytes");
    assert_eq!(cache, 64 << 20);

    // The memory limit holds the volume (memory-backed: it counts), the
    // memory cache, the running instances (cores + 1 at the CPU limit, each
    // up to max_memory_bytes), the loaded snapshots, the registry, the
    // request bodies held at once, the process, and room.
    let limits = &container["resources"]["limits"];
    let memory_limit = quantity(&limits["memory"]);
    let cores: u64 = limits["cpu"].as_str().unwrap().parse().unwrap();
    let instances = (cores + 1) * size(&settings, "max_memory_bytes");
    let snapshots = size(&settings, "max_snapshots") * (6 << 20);
    let registry = size(&settings, "max_registry_bytes");
    let bodies = size(&settings, "max_body_memory_bytes");
    let process = 100 << 20;
    let needed = volume_bytes + cache + instances + snapshots + registry + bodies + process;
    assert!(
        memory_limit >= needed + (64 << 20),
        "memory limit {memory_limit} leaves under 64Mi over {needed}"
    );
    assert_eq!(
        quantity(&container["resources"]["requests"]["memory"]),
        memory_limit
    );

    // Probes, ports, the scrape.
    let port = container["ports"][0]["containerPort"].as_u64().unwrap();
    let listen: std::net::SocketAddr = settings["listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(u64::from(listen.port()), port);
    assert!(
        listen.ip().is_unspecified(),
        "the pod listens on every address"
    );
    assert_eq!(container["ports"][0]["name"], "http");
    for (probe, path) in [
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
    let service = object(&objects, "Service");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

    // Locked down.
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(spec["affinity"]["podAntiAffinity"].is_object());

    // The kubelet's SIGKILL comes after the server's grace period.
    let grace_ms = size(&settings, "grace_period_ms");
    let termination = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        termination * 1000 > grace_ms,
        "{termination} s vs {grace_ms} ms"
    );

    // The selectors match the pods.
    let labels = &pod["metadata"]["labels"];
    assert_eq!(
        &object(&objects, "Deployment")["spec"]["selector"]["matchLabels"],
        labels
    );
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(
        &object(&objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        labels
    );
    let hpa = object(&objects, "HorizontalPodAutoscaler");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "nexus");
}

/// The Containerfile's two stages, comments left out: the builder's lines
/// and the runtime's.
fn containerfile() -> (Vec<String>, Vec<String>) {
    let text = std::fs::read_to_string(kubernetes_dir().join("../Containerfile")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(str::to_owned)
        .collect();
    let stages: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "two stages: {stages:?}");
    (
        lines[stages[0]..stages[1]].to_vec(),
        lines[stages[1]..].to_vec(),
    )
}

/// The builder's `RUN` that makes the seed, its continuation lines joined.
fn seed_command(builder: &[String]) -> String {
    let text = builder.join("\n").replace("\\\n", " ");
    text.lines()
        .find(|l| l.starts_with("RUN ") && l.contains("nexus cache warm"))
        .expect("the builder runs `nexus cache warm`")
        .trim_start_matches("RUN ")
        .to_owned()
}

/// The runtime stage's `ENV` value of `name`.
fn image_env(runtime: &[String], name: &str) -> Option<String> {
    runtime.iter().find_map(|l| {
        let (var, value) = l.strip_prefix("ENV ")?.split_once('=')?;
        (var == name).then(|| value.to_owned())
    })
}

/// A directory the pod's user may enter and read, like an image's.
fn world_readable() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The pod as deployed, short of a container runtime: the image's seed
/// made by the Containerfile's own command, the ConfigMap's `nexus.toml`
/// and handlers, the Deployment's arguments and environment and the
/// image's, and (when the tests run as root) the Deployment's user, which
/// is not root and trusts the seed only because root owns it. The probes
/// and the scrape answer as Kubernetes and Prometheus expect, and the pod
/// compiles nothing: the guest, the handler and its snapshot all come
/// from the seed.
#[test]
fn the_pod_as_deployed_starts_warm_from_the_images_seed_and_answers_probes_and_scrape() {
    use std::os::unix::fs::PermissionsExt;
    let objects = rendered();
    let pod = &object(&objects, "Deployment")["spec"]["template"];
    let container = &pod["spec"]["containers"][0];

    // The image: the binary (copied, so that the pod's user can run it
    // wherever this checkout is) and the seed, made as the builder makes it.
    let (builder, runtime) = containerfile();
    let image = world_readable();
    let nexus = image.path().join("nexus");
    std::fs::copy(env!("CARGO_BIN_EXE_nexus"), &nexus).unwrap();
    let seed = image.path().join("seed");
    let command = seed_command(&builder)
        .replace("/out/nexus", nexus.to_str().unwrap())
        .replace("/out/seed", seed.to_str().unwrap());
    let made = Command::new("sh")
        .args(["-c", &command])
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .env_remove("NEXUS_LOG")
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let image_seed = image_env(&runtime, "NEXUS_SEED_DIR").expect("the image sets NEXUS_SEED_DIR");
    assert!(
        runtime
            .iter()
            .any(|l| l == &format!("COPY --from=build /out/seed {image_seed}")),
        "the seed is copied where NEXUS_SEED_DIR points"
    );

    let config_dir = world_readable();
    let handlers_dir = world_readable();
    // The Secret as the kubelet projects it: the pod user's own, 0400.
    let security = &pod["spec"]["securityContext"];
    let tokens_dir = world_readable();
    let admin_token = tokens_dir.path().join("admin");
    std::fs::write(&admin_token, "deploy-token-31c8\n").unwrap();
    std::fs::set_permissions(&admin_token, std::fs::Permissions::from_mode(0o400)).unwrap();
    if rustix::process::geteuid().is_root() {
        let id = |key: &str| security[key].as_u64().unwrap() as u32;
        std::os::unix::fs::chown(&admin_token, Some(id("runAsUser")), Some(id("runAsGroup")))
            .unwrap();
    }
    for map in objects.iter().filter(|o| o["kind"] == "ConfigMap") {
        let into = if map["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("nexus-handlers")
        {
            handlers_dir.path()
        } else {
            config_dir.path()
        };
        for (file, text) in map["data"].as_object().unwrap() {
            std::fs::write(into.join(file), text.as_str().unwrap()).unwrap();
        }
    }
    // The image's environment, then the Deployment's, their paths pointed
    // at the test's directories; the harness listens on a free loopback
    // port and passes its own --cache-dir, which beats NEXUS_CACHE_DIR.
    let mut env: Vec<(String, String)> =
        vec![("NEXUS_SEED_DIR".into(), seed.display().to_string())];
    for var in container["env"].as_array().unwrap() {
        let (name, value) = (
            var["name"].as_str().unwrap(),
            var["value"].as_str().unwrap(),
        );
        let value = match name {
            "NEXUS_CONFIG" => config_dir.path().join("nexus.toml").display().to_string(),
            "NEXUS_ADMIN_TOKEN_FILE" => admin_token.display().to_string(),
            _ => value.to_owned(),
        };
        env.push((name.to_owned(), value));
    }
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("/etc/nexus/handlers", handlers_dir.path().to_str().unwrap())
        })
        .collect();
    assert_eq!(args[0], "serve");
    // An emptyDir's root is open to all (0777); the cache keeps its files
    // in a private directory inside it.
    let cache = world_readable();
    std::fs::set_permissions(cache.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let args: Vec<&str> = args[1..].iter().map(String::as_str).collect();
    let launcher = if rustix::process::geteuid().is_root() {
        let mut setpriv = Command::new("setpriv");
        setpriv
            .arg(format!("--reuid={}", security["runAsUser"]))
            .arg(format!("--regid={}", security["runAsGroup"]))
            .arg("--clear-groups")
            .arg(&nexus);
        setpriv
    } else {
        Command::new(&nexus)
    };
    let server = Server::launch(launcher, cache.path(), &args, &env).ready();

    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        assert_eq!(
            server.request("GET", path, b"").status,
            200,
            "{probe} {path}"
        );
    }
    // Management: refused without the Secret's token, taken with it.
    let delete = |auth: &str| {
        let raw = format!(
            "DELETE /handlers/nothing HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n"
        );
        server.raw(raw.as_bytes(), false).unwrap().status
    };
    assert_eq!(delete(""), 401);
    assert_eq!(delete("Authorization: Bearer deploy-token-31c8\r\n"), 404);
    for _ in 0..3 {
        let hello = server.request("POST", "/handlers/hello/invoke", br#"{"name":"k8s"}"#);
        assert_eq!(hello.json()["message"], "Hello, k8s!");
    }
    assert_eq!(
        crate::snapshots::settled(&server, "hello")["snapshot"],
        "prepared"
    );
    let path = pod["metadata"]["annotations"]["prometheus.io/path"]
        .as_str()
        .unwrap();
    let scrape = server.request("GET", path, b"");
    assert_eq!(scrape.status, 200);
    assert!(scrape
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = scrape.text();
    assert!(
        text.contains("nexus_cache_hit_rate{artifact=\"bytecode\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("nexus_invocations_total{outcome=\"ok\"} 3"),
        "{text}"
    );
    // Warm: nothing compiled, nothing snapshotted; the seed answered.
    for artifact in ["bytecode", "component"] {
        let series = |name: &str, tier: &str| {
            crate::support::server::sample(
                &text,
                &format!(r#"{name}{{artifact="{artifact}"{tier}}}"#),
            )
        };
        assert_eq!(series("nexus_cache_misses_total", ""), 0.0, "{artifact}");
        assert!(
            series("nexus_cache_hits_total", r#",tier="seed""#) >= 1.0,
            "{artifact}"
        );
    }
    assert_eq!(
        crate::support::server::sample(&text, r#"nexus_snapshots_total{outcome="built"}"#),
        0.0
    );
    assert_eq!(
        crate::support::server::sample(&text, r#"nexus_snapshots_total{outcome="loaded"}"#),
        1.0
    );
    // The config's log format took: one JSON object a line.
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("\"ready\"")),
        "{log}"
    );
    assert!(log.contains("seed directory in use"), "{log}");
}

#[test]
fn the_configmaps_handler_is_the_example() {
    assert_eq!(
        std::fs::read_to_string(kubernetes_dir().join("handlers/hello.js")).unwrap(),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello.js")).unwrap(),
        "deploy/kubernetes/handlers/hello.js is a copy of examples/hello.js (kustomize reads only below its directory)"
    );
}

/// The Containerfile cannot be built here (no container daemon on these
/// machines): read it. Two stages; the builder runs the setup script and a
/// locked release build, then makes the seed (run for real by the test
/// above); the runtime stage copies only the binary and the seed, and runs
/// as a non-root user.
#[test]
fn the_containerfile_builds_in_two_stages_and_runs_only_the_binary_and_its_seed_as_non_root() {
    let (builder, runtime) = containerfile();
    let (builder, runtime) = (builder.join("\n"), runtime.join("\n"));
    assert!(builder.contains("AS build"));
    assert!(builder.contains("bash scripts/setup.sh"));
    assert!(builder.contains("cargo build --release --locked --bin nexus"));
    let copies: Vec<&str> = runtime.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(
        copies,
        [
            "COPY --from=build /out/nexus /usr/local/bin/nexus",
            "COPY --from=build /out/seed /usr/share/nexus/seed"
        ]
    );
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .unwrap();
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "{user}"
    );
    let objects = rendered();
    let uid = object(&objects, "Deployment")["spec"]["template"]["spec"]["securityContext"]
        ["runAsUser"]
        .as_u64()
        .unwrap();
    assert_eq!(
        user.split(':').next().unwrap(),
        uid.to_string(),
        "the Deployment runs the image's user"
    );
}
