//! The handlers directory as the registry: each `NAME.js` in it is a
//! handler, `NAME.snapshot` beside it (`auto`, `eager` or `off`) its own
//! snapshot policy, and `NAME.isolation` (`per-call` or `reuse`) its own
//! isolation. What the directory holds is what is served:
//!
//! - a watcher (inotify, through `notify`) rescans it after each burst of
//!   changes: a new file registers, a changed one replaces its handler
//!   (calls in flight finish on the old version), a removed one
//!   unregisters. A kubelet's swap of a mounted ConfigMap's `..data`
//!   symlink is one such change;
//! - a change that does not compile keeps the previous version serving; it
//!   is logged once (with file:line:col), kept as the handler's reload
//!   error, and counted;
//! - registering and removing write and delete the files (a temporary file,
//!   fsync, rename), so a registration survives a restart and reaches every
//!   process watching the directory; a read-only directory (a ConfigMap)
//!   refuses them with [`Error::ReadOnlyRegistry`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::Watcher as _;

use super::{handler_files, HandlerOptions, Handlers};
use crate::config::{Isolation, SnapshotPolicy};
use crate::error::{Error, Result};

/// How long the watcher waits for a burst of changes to end.
const SETTLE: Duration = Duration::from_millis(100);

pub(super) struct Directory {
    path: PathBuf,
    /// What each name was last registered from: its file's policy and
    /// source, hashed; and a version that did not compile.
    state: Mutex<Applied>,
    reloads: [AtomicU64; 2],
    /// Temporary files written so far (each gets its own name).
    writes: AtomicU64,
}

#[derive(Default)]
struct Applied {
    files: BTreeMap<String, blake3::Hash>,
    broken: BTreeMap<String, (blake3::Hash, String)>,
}

/// Reloads from the directory so far, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadCounts {
    /// Changes applied: a handler registered, replaced or removed.
    pub ok: u64,
    /// Changes that did not compile (the previous version kept serving).
    pub error: u64,
}

/// Watches a handlers directory while alive.
pub struct DirectoryWatcher {
    _watcher: notify::RecommendedWatcher,
}

fn fingerprint(options: HandlerOptions, source: &str) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(
        options
            .snapshot
            .map_or("", SnapshotPolicy::as_str)
            .as_bytes(),
    );
    hasher.update(&[0]);
    hasher.update(options.isolation.map_or("", Isolation::as_str).as_bytes());
    hasher.update(&[0]);
    hasher.update(source.as_bytes());
    hasher.finalize()
}

impl Directory {
    pub(super) fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            state: Mutex::default(),
            reloads: Default::default(),
            writes: AtomicU64::new(0),
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn source_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.js"))
    }

    /// Where `name`'s policy of `kind` (`snapshot`, `isolation`) is kept.
    fn policy_path(&self, name: &str, kind: &str) -> PathBuf {
        self.path.join(format!("{name}.{kind}"))
    }

    /// `name`'s policy files' options, each if there is one.
    fn options(&self, name: &str) -> std::result::Result<HandlerOptions, String> {
        Ok(HandlerOptions {
            snapshot: self.policy(
                name,
                "snapshot",
                SnapshotPolicy::from_name,
                "auto, eager or off",
            )?,
            isolation: self.policy(name, "isolation", Isolation::from_name, "per-call or reuse")?,
        })
    }

    /// `name`'s policy file of `kind`, parsed, if there is one.
    fn policy<P>(
        &self,
        name: &str,
        kind: &str,
        parse: fn(&str) -> Option<P>,
        expected: &str,
    ) -> std::result::Result<Option<P>, String> {
        match std::fs::read_to_string(self.policy_path(name, kind)) {
            Ok(text) => parse(text.trim()).map(Some).ok_or_else(|| {
                format!("{name}.{kind} says {:?}: expected {expected}", text.trim())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {name}.{kind}: {e}")),
        }
    }

    /// Writes `name`'s files, each atomically, then records them as
    /// applied (so the watcher finds nothing new in them).
    pub(super) fn write(&self, name: &str, source: &str, options: HandlerOptions) -> Result<()> {
        let policies = [
            ("snapshot", options.snapshot.map(SnapshotPolicy::as_str)),
            ("isolation", options.isolation.map(Isolation::as_str)),
        ];
        for (kind, policy) in policies {
            let path = self.policy_path(name, kind);
            match policy {
                Some(policy) => self.write_file(&path, policy)?,
                None => drop(self.delete_file(&path)?),
            }
        }
        self.write_file(&self.source_path(name), source)?;
        self.applied(name, fingerprint(options, source));
        Ok(())
    }

    /// Deletes `name`'s files; answers whether its source was there.
    pub(super) fn delete(&self, name: &str) -> Result<bool> {
        let existed = self.delete_file(&self.source_path(name))?;
        self.delete_file(&self.policy_path(name, "snapshot"))?;
        self.delete_file(&self.policy_path(name, "isolation"))?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.files.remove(name);
        state.broken.remove(name);
        Ok(existed)
    }

    fn applied(&self, name: &str, hash: blake3::Hash) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.files.insert(name.to_owned(), hash);
        state.broken.remove(name);
    }

    fn write_file(&self, path: &Path, text: &str) -> Result<()> {
        let file_name = path.file_name().unwrap_or_default().to_string_lossy();
        // Unique per write: two registrations of one name at once each
        // write their own temporary file, and the last rename wins whole.
        let n = self.writes.fetch_add(1, Relaxed);
        let temp = self
            .path
            .join(format!(".{file_name}.{}.{n}.tmp", std::process::id()));
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, path)?;
            std::fs::File::open(&self.path)?.sync_all()
        })();
        written.map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            self.refused(e)
        })
    }

    fn delete_file(&self, path: &Path) -> Result<bool> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.refused(e)),
        }
    }

    fn refused(&self, e: std::io::Error) -> Error {
        use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
        match e.kind() {
            ReadOnlyFilesystem | PermissionDenied => Error::ReadOnlyRegistry {
                dir: self.path.display().to_string(),
            },
            _ => Error::Internal(format!(
                "writing the handlers directory {}: {e}",
                self.path.display()
            )),
        }
    }

    /// The error of `name`'s newest version, if it did not compile.
    pub(super) fn reload_error(&self, name: &str) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.broken.get(name).map(|(_, e)| e.clone())
    }

    pub(super) fn counts(&self) -> ReloadCounts {
        ReloadCounts {
            ok: self.reloads[0].load(Relaxed),
            error: self.reloads[1].load(Relaxed),
        }
    }
}

impl Handlers {
    /// Applies what the handlers directory holds now: registers new and
    /// changed files, unregisters removed ones. At start (`strict`), the
    /// first file that cannot be registered is an error; later, it is
    /// logged once and the previous version kept.
    ///
    /// # Errors
    ///
    /// When the directory cannot be read; under `strict`, registering's.
    pub(super) fn sync(&self, strict: bool) -> Result<()> {
        let Some(dir) = &self.directory else {
            return Ok(());
        };
        let files = handler_files(dir.path()).map_err(|e| {
            Error::Internal(format!(
                "reading the handlers directory {}: {e}",
                dir.path().display()
            ))
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for (name, path) in files {
            seen.insert(name.clone());
            let read = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|source| Ok((dir.options(&name)?, source)));
            let (options, source) = match read {
                Ok(read) => read,
                Err(why) => {
                    // A file being replaced can vanish between list and read.
                    tracing::debug!(handler = %name, "{why}");
                    continue;
                }
            };
            let hash = fingerprint(options, &source);
            {
                let state = dir.state.lock().unwrap_or_else(|e| e.into_inner());
                let broken = state.broken.get(&name).is_some_and(|(h, _)| *h == hash);
                if state.files.get(&name) == Some(&hash) || broken {
                    continue;
                }
            }
            match self.install(&name, &source, options) {
                Ok((handler, replaced)) => {
                    dir.applied(&name, hash);
                    dir.reloads[0].fetch_add(1, Relaxed);
                    tracing::info!(handler = %name, origin = handler.compiled.origin.as_str(), replaced, "registered from {}", path.display());
                }
                Err(e) if strict => {
                    return Err(Error::Internal(format!(
                        "registering {} as {name:?}: {e}",
                        path.display()
                    )))
                }
                Err(e) => {
                    let at = match &e {
                        Error::Compile { line, column, .. } => {
                            format!("{}:{line}:{column}", path.display())
                        }
                        _ => path.display().to_string(),
                    };
                    let message = format!("{at}: {e}");
                    tracing::warn!(handler = %name, "{message}; the previous version keeps serving");
                    dir.reloads[1].fetch_add(1, Relaxed);
                    let mut state = dir.state.lock().unwrap_or_else(|e| e.into_inner());
                    state.broken.insert(name, (hash, message));
                }
            }
        }
        let gone: Vec<String> = {
            let state = dir.state.lock().unwrap_or_else(|e| e.into_inner());
            state
                .files
                .keys()
                // A listing that races another process's rename may miss a
                // file that was there throughout: only a failed lookup
                // unregisters.
                .filter(|n| !seen.contains(*n) && !dir.source_path(n).exists())
                .cloned()
                .collect()
        };
        for name in gone {
            self.unregister(&name);
            let mut state = dir.state.lock().unwrap_or_else(|e| e.into_inner());
            state.files.remove(&name);
            state.broken.remove(&name);
            dir.reloads[0].fetch_add(1, Relaxed);
            tracing::info!(handler = %name, "unregistered: its file is gone");
        }
        Ok(())
    }

    /// Watches the handlers directory, applying each burst of changes,
    /// until the watcher is dropped. `None` when there is no directory.
    ///
    /// # Errors
    ///
    /// When the directory cannot be watched.
    pub fn watch(self: &Arc<Self>) -> Result<Option<DirectoryWatcher>> {
        let Some(dir) = &self.directory else {
            return Ok(None);
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })
        .map_err(|e| Error::Internal(format!("watching {}: {e}", dir.path().display())))?;
        watcher
            .watch(dir.path(), notify::RecursiveMode::NonRecursive)
            .map_err(|e| Error::Internal(format!("watching {}: {e}", dir.path().display())))?;
        let handlers: Weak<Handlers> = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("nexus-handlers-dir".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // The rest of the burst: a swap is several events.
                    while rx.recv_timeout(SETTLE).is_ok() {}
                    let Some(handlers) = handlers.upgrade() else {
                        return;
                    };
                    if let Err(e) = handlers.sync(false) {
                        tracing::warn!("{e}");
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("starting the directory watcher: {e}")))?;
        Ok(Some(DirectoryWatcher { _watcher: watcher }))
    }
}
