//! Settings from flags, the environment and `nexus.toml`, through the CLI.

use crate::support::{nexus, output, vectors_dir};

#[test]
fn settings_come_from_flags_env_and_nexus_toml() {
    let dir = tempfile::tempdir().unwrap();
    let hello = vectors_dir().join("hello.js");
    let from_file = dir.path().join("from-file");
    std::fs::write(
        dir.path().join("nexus.toml"),
        format!(
            "cache_dir = {:?}\nmax_disk_cache_bytes = \"32Mi\"\n",
            from_file.display().to_string()
        ),
    )
    .unwrap();
    let (mut cmd, _c) = nexus();
    cmd.env_remove("NEXUS_CACHE_DIR")
        .current_dir(dir.path())
        .arg("run")
        .arg(&hello);
    assert!(output(&mut cmd).status.success());
    assert!(
        from_file.join("v1/bytecode").exists(),
        "nexus.toml's cache_dir was used"
    );

    // The environment beats the file; a flag beats the environment.
    let (mut cmd, _c) = nexus();
    cmd.current_dir(dir.path())
        .env("NEXUS_CACHE_DIR", dir.path().join("from-env"));
    assert!(output(cmd.arg("run").arg(&hello)).status.success());
    assert!(dir.path().join("from-env/v1").exists());
    let (mut cmd, _c) = nexus();
    cmd.current_dir(dir.path())
        .env("NEXUS_CACHE_DIR", dir.path().join("from-env"));
    assert!(output(
        cmd.arg("run")
            .arg(&hello)
            .arg("--cache-dir")
            .arg(dir.path().join("from-flag"))
    )
    .status
    .success());
    assert!(dir.path().join("from-flag/v1").exists());

    // A bad value is refused before anything runs, naming the setting.
    let (mut cmd, _c) = nexus();
    cmd.env("NEXUS_MAX_DISK_CACHE_BYTES", "a lot")
        .arg("run")
        .arg(&hello);
    let out = output(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("max_disk_cache_bytes") && stderr.contains("64Mi"),
        "{stderr}"
    );
}

/// `--help` comes from the same table as the settings: every setting is
/// there with its environment variable and default; the server's own only
/// in `nexus serve --help`.
#[test]
fn help_lists_every_setting_from_the_table() {
    let help = |command: &str| {
        let (mut cmd, _c) = nexus();
        String::from_utf8(output(cmd.args([command, "--help"])).stdout).unwrap()
    };
    let (run, serve) = (help("run"), help("serve"));
    for setting in nexus_host::SETTINGS {
        let flag = format!("--{} <", setting.flag());
        assert!(serve.contains(&flag), "{serve}");
        assert!(serve.contains(&setting.long_help()), "{serve}");
        assert_eq!(run.contains(&flag), !setting.serve_only, "{run}");
    }
    assert!(run.contains("[range: 4Mi to 4Gi] [default: 64Mi]"), "{run}");
    assert!(serve.contains("[env: NEXUS_LISTEN]"), "{serve}");
}

#[test]
fn a_value_out_of_range_is_refused_naming_the_setting_and_its_range() {
    for (flag, value, says) in [
        ("--timeout-ms", "18446744073709551615", "from 1 to 3600000"),
        ("--max-instances", "4294967552", "a whole number"),
        ("--max-memory-bytes", "1Mi", "from 4Mi to 4Gi"),
    ] {
        let (mut cmd, _c) = nexus();
        let out = output(
            cmd.arg("run")
                .arg(vectors_dir().join("hello.js"))
                .args([flag, value]),
        );
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let name = flag.trim_start_matches("--").replace('-', "_");
        assert!(
            stderr.contains(&name) && stderr.contains(says),
            "{flag}: {stderr}"
        );
    }
}

/// docs/settings.md is what `nexus settings` prints from the table: a
/// setting added, renamed or given a new default makes this fail until the
/// page is made again.
#[test]
fn the_settings_page_is_generated_from_the_table() {
    let (mut cmd, _c) = nexus();
    let out = output(cmd.args(["settings", "--format", "markdown"]));
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/settings.md");
    let committed = std::fs::read_to_string(&page).unwrap();
    assert!(
        printed == committed,
        "docs/settings.md is stale: run `nexus settings > docs/settings.md`"
    );
    for setting in nexus_host::SETTINGS {
        assert!(committed.contains(&format!("\n## {}\n", setting.name)));
        assert!(committed.contains(setting.env));
    }

    // The JSON form carries the same table, for the Node package.
    let (mut cmd, _c) = nexus();
    let out = output(cmd.args(["settings", "--format", "json"]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = json["settings"].as_array().unwrap();
    assert_eq!(settings.len(), nexus_host::SETTINGS.len());
    let max = settings
        .iter()
        .find(|s| s["name"] == "max_instances")
        .unwrap();
    assert_eq!(max["range"], serde_json::json!(["1", "10000"]));
    assert_eq!(max["env"], "NEXUS_MAX_INSTANCES");
    assert_eq!(max["default"], "256");
}

/// `max_snapshots` was `max_prepared`: the old flag, variable and key still
/// set it, each with a warning naming the new one.
#[test]
fn a_renamed_setting_answers_to_its_old_name_with_a_warning() {
    use crate::support::server::{handlers_dir, Server};
    let cache = tempfile::tempdir().unwrap();
    let handlers = handlers_dir(&[("hello.js", "export default () => 1")]);
    let toml = tempfile::tempdir().unwrap();
    let file = toml.path().join("nexus.toml");
    std::fs::write(&file, "max_prepared = 0\n").unwrap();
    let file = file.to_str().unwrap();
    for (args, env, warning) in [
        (
            vec!["--max-prepared", "0"],
            vec![],
            "--max-prepared is the old name of --max-snapshots",
        ),
        (
            vec![],
            vec![("NEXUS_MAX_PREPARED", "0")],
            "NEXUS_MAX_PREPARED is the old name of NEXUS_MAX_SNAPSHOTS",
        ),
        (
            vec!["--config", file],
            vec![],
            "max_prepared is the old name of max_snapshots",
        ),
    ] {
        let mut all = vec!["--handlers", handlers.path().to_str().unwrap()];
        all.extend(args);
        let server = Server::start_with(cache.path(), &all, &env).ready();
        let hello = server.request("GET", "/handlers/hello", b"").json();
        assert_eq!(hello["snapshot"], "off", "max_snapshots = 0: {warning}");
        server.log_with(warning);
    }
}

/// The docs list every value the API can answer: each origin a PUT can
/// report, and each error kind.
#[test]
fn the_http_docs_name_every_origin_and_error_kind() {
    let page = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/http.md");
    let page = std::fs::read_to_string(page).unwrap();
    let put = page
        .lines()
        .find(|l| l.starts_with("| `PUT /handlers/{name}`"))
        .unwrap();
    for origin in nexus_host::Origin::ALL {
        assert!(put.contains(&format!("\"{}\"", origin.as_str())), "{put}");
    }
    for kind in nexus_host::Error::KINDS {
        assert!(
            page.contains(&format!("`{kind}`")),
            "docs/http.md lacks {kind}"
        );
    }
}
