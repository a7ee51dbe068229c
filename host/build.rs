//! Builds the `nexus-guest` component for `wasm32-wasip2` with a nested cargo,
//! into its own target dir under `OUT_DIR` (as wasmtime's test-programs
//! artifacts do), and hands its path and fingerprint to the host crate.
//!
//! The guest is linked as a core module (`--skip-wit-component`) and made a
//! component here, without the WASI imports no handler can reach
//! (`trim_imports`): fewer imports, cheaper instances.
//!
//! QuickJS is C: it needs a clang with a wasm32 backend and WASI libc headers.
//! `WASI_SDK_PATH` wins when set; otherwise Debian's clang-19 + wasi-libc, as
//! installed by `scripts/setup.sh`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/trim_imports.rs"]
mod trim_imports;

const TARGET: &str = "wasm32-wasip2";
const SETUP: &str = "run `bash scripts/setup.sh` (or `./x setup`) to install it";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap();
    for path in [
        "guest/src",
        "guest/Cargo.toml",
        "guest/build.rs",
        "wit",
        "Cargo.lock",
        "host/build",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }
    for var in ["WASI_SDK_PATH", "NEXUS_GUEST_CC"] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let target_dir = out_dir.join("guest-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    check_rust_target();
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "-p", "nexus-guest"])
        .arg(format!("--target={TARGET}"))
        .arg("--target-dir")
        .arg(&target_dir)
        // Flags meant for the host build must not leak into the guest's.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        // A core module: `trim_imports` makes the component. The guest's
        // build directory lies under this build's OUT_DIR, which differs
        // between profiles and feature sets; its paths are mapped to one
        // name, so every build of the host embeds the same guest bytes (and
        // so shares cache keys with every other: `nexus`, the Node addon).
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                "-Clink-arg=--skip-wit-component".to_owned(),
                format!(
                    "--remap-path-prefix={}={GUEST_TARGET}",
                    target_dir.display()
                ),
            ]
            .join("\x1f"),
        );
    configure_c_toolchain(&mut cmd, &target_dir);

    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("could not run nested cargo for the guest: {e}"));
    if !status.success() {
        panic!("building nexus-guest for {TARGET} failed (see above); if the C toolchain is missing, {SETUP}");
    }

    let core = target_dir.join(TARGET).join("release/nexus_guest.wasm");
    let core = std::fs::read(&core)
        .unwrap_or_else(|e| panic!("guest module missing at {}: {e}", core.display()));
    let bytes = trim_imports::componentize(&core)
        .unwrap_or_else(|e| panic!("making the guest a component failed: {e:?}"));
    let wasm = out_dir.join("nexus_guest.wasm");
    std::fs::write(&wasm, &bytes)
        .unwrap_or_else(|e| panic!("could not write {}: {e}", wasm.display()));
    println!("cargo:rustc-env=NEXUS_GUEST_WASM={}", wasm.display());
    println!(
        "cargo:rustc-env=NEXUS_GUEST_FINGERPRINT={}",
        blake3::hash(&bytes).to_hex()
    );
}

fn check_rust_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(sysroot) = sysroot {
        if !sysroot.join("lib/rustlib").join(TARGET).exists() {
            panic!("the Rust target {TARGET} is not installed; {SETUP} (or `rustup target add {TARGET}`)");
        }
    }
}

/// What the guest's build directory is called inside the guest.
const GUEST_TARGET: &str = "/nexus-guest-target";

fn configure_c_toolchain(cmd: &mut Command, target_dir: &Path) {
    // QuickJS's `__FILE__`s name its sources under the build directory.
    let prefix_map = format!("-ffile-prefix-map={}={GUEST_TARGET}", target_dir.display());
    if let Some(sdk) = env::var_os("WASI_SDK_PATH") {
        if !Path::new(&sdk).join("bin/clang").exists() {
            panic!(
                "WASI_SDK_PATH={} has no bin/clang; point it at a WASI SDK or unset it",
                Path::new(&sdk).display()
            );
        }
        // rquickjs-sys reads `WASI_SDK` and sets CC, AR and the sysroot itself.
        cmd.env("WASI_SDK", &sdk)
            .env("CFLAGS_wasm32_wasip2", prefix_map);
        return;
    }

    let cc = env::var("NEXUS_GUEST_CC").unwrap_or_else(|_| "clang-19".to_owned());
    let ar = cc.replace("clang", "llvm-ar");
    let headers = Path::new("/usr/include/wasm32-wasi");
    if which(&cc).is_none() || which(&ar).is_none() || !headers.exists() {
        panic!(
            "building QuickJS for {TARGET} needs `{cc}`, `{ar}` and WASI libc headers in {}; {SETUP}, \
             or set WASI_SDK_PATH to a WASI SDK",
            headers.display()
        );
    }
    // Keeps rquickjs-sys from downloading a WASI SDK: this machine's clang
    // builds it, with wasi-libc's headers in place of the host's glibc ones.
    cmd.env("RQUICKJS_SYS_NO_WASI_SDK", "1")
        .env("CC_wasm32_wasip2", &cc)
        .env("AR_wasm32_wasip2", &ar)
        .env(
            "CFLAGS_wasm32_wasip2",
            format!("-isystem {} {prefix_map}", headers.display()),
        );
}

fn which(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
