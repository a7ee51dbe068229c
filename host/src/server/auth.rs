//! Who may do what: bearer tokens for management (PUT, DELETE) and,
//! optionally, for invocations and reads.
//!
//! - A token file holds tokens one per line (blank lines and `#` comments
//!   aside); two lines are how a rotation works. It is re-read when it
//!   changes (looked at most once a second); a change that leaves it
//!   unreadable, empty or too open keeps the tokens it had, with a warning.
//! - It must not be readable by others, nor by a group other than the
//!   server's own (as ssh asks of keys); otherwise the server refuses to
//!   start.
//! - Tokens are kept as BLAKE3 hashes and compared with `blake3::Hash`'s
//!   constant-time equality, so neither a token's bytes nor its length
//!   shows in the time a refusal takes. No token is ever logged or echoed.
//! - Without an admin token file, management is open only when the server
//!   listens on a loopback address; elsewhere it is disabled (403).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use super::errors::ApiError;

/// How often a token file is looked at for changes, at most.
const RECHECK: Duration = Duration::from_secs(1);

/// Who may use a class of routes.
pub(crate) enum Access {
    /// Anyone who reaches the port.
    Open,
    /// Whoever presents one of the file's tokens.
    Tokens(TokenFile),
    /// Nobody: management on a non-loopback address with no token file.
    Disabled(String),
}

impl Access {
    /// Checks the request's `Authorization` header.
    ///
    /// # Errors
    ///
    /// 401 `unauthorized` (with `WWW-Authenticate: Bearer`) for a missing
    /// or wrong token; 403 `management_disabled` when disabled.
    pub fn check(&self, headers: &HeaderMap, also: Option<&Access>) -> Result<(), ApiError> {
        match self {
            Access::Open => Ok(()),
            Access::Disabled(why) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "management_disabled",
                why.clone(),
            )),
            Access::Tokens(tokens) => {
                let presented = bearer(headers);
                let admitted = presented.is_some_and(|token| {
                    tokens.admits(token)
                        || matches!(also, Some(Access::Tokens(other)) if other.admits(token))
                });
                if admitted {
                    Ok(())
                } else {
                    let message = match presented {
                        None => "this route needs `Authorization: Bearer <token>`",
                        Some(_) => "the bearer token is not one of the server's",
                    };
                    Err(
                        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
                            .with_header(
                                header::WWW_AUTHENTICATE,
                                HeaderValue::from_static("Bearer"),
                            ),
                    )
                }
            }
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| token.trim_ascii())
        .filter(|token| !token.is_empty())
}

/// A file of bearer tokens, re-read when it changes.
pub(crate) struct TokenFile {
    path: PathBuf,
    setting: &'static str,
    state: Mutex<Loaded>,
}

struct Loaded {
    stamp: Stamp,
    hashes: Vec<blake3::Hash>,
    looked: Instant,
}

/// What tells a changed file: its identity, size and modification time
/// (a kubelet swaps a symlink to a new file; an editor rewrites in place).
#[derive(PartialEq, Eq, Clone, Copy)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl TokenFile {
    /// Reads the token file `setting` names.
    ///
    /// # Errors
    ///
    /// When it cannot be read, holds no token, or others (or a group not
    /// the server's) may read it; the message names the fix.
    pub fn open(path: &Path, setting: &'static str) -> Result<Self> {
        let (stamp, hashes) = read(path, setting)?;
        Ok(Self {
            path: path.to_owned(),
            setting,
            state: Mutex::new(Loaded {
                stamp,
                hashes,
                looked: Instant::now(),
            }),
        })
    }

    /// Whether `token` is one of the file's, as it is now.
    fn admits(&self, token: &[u8]) -> bool {
        let presented = blake3::hash(token);
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.looked.elapsed() >= RECHECK {
            state.looked = Instant::now();
            self.reload(&mut state);
        }
        // Every hash is compared, each in constant time.
        state
            .hashes
            .iter()
            .fold(false, |found, hash| found | (*hash == presented))
    }

    fn reload(&self, state: &mut Loaded) {
        let Ok(now) = stamp(&self.path) else {
            tracing::warn!(setting = self.setting, path = %self.path.display(), "the token file cannot be read; keeping the tokens it had");
            return;
        };
        if now == state.stamp {
            return;
        }
        match read(&self.path, self.setting) {
            Ok((stamp, hashes)) => {
                tracing::info!(
                    setting = self.setting,
                    tokens = hashes.len(),
                    "token file re-read"
                );
                state.stamp = stamp;
                state.hashes = hashes;
            }
            Err(e) => {
                tracing::warn!(setting = self.setting, "{e:#}; keeping the tokens it had");
            }
        }
    }
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let meta = std::fs::metadata(path)?;
    Ok(Stamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// The file's stamp and its tokens' hashes, if it may be trusted.
fn read(path: &Path, setting: &'static str) -> Result<(Stamp, Vec<blake3::Hash>)> {
    let shown = path.display();
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {setting} {shown}"))?;
    let mode = meta.mode();
    let own_group = meta.gid() == rustix::process::getegid().as_raw();
    if mode & 0o004 != 0 || (mode & 0o040 != 0 && !own_group) {
        bail!(
            "{setting} {shown} may be read by others (mode {:o}); it holds secrets: chmod 600 {shown}",
            mode & 0o777
        );
    }
    let before = stamp(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {setting} {shown}"))?;
    let hashes: Vec<blake3::Hash> = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|token| blake3::hash(token.as_bytes()))
        .collect();
    if hashes.is_empty() {
        bail!("{setting} {shown} holds no token: write one per line");
    }
    Ok((before, hashes))
}
