//! The registry: handlers by name, what `nexus serve` serves. Registering
//! compiles through the cache; re-registering a name swaps the handler in
//! one step, so calls already running finish on the version they started
//! with. Each handler's calls take its snapshot once the policy
//! ([`snapshots`]) has loaded one, the plain path until then.
//!
//! Layer: above `runtime` (the façade for one invocation), below the edges
//! (`server`, `cli`); imports `runtime`, `artifacts` (for
//! [`CompiledHandler`]), `cache`, `config`, `error` and `names`.

mod directory;
mod series;
mod snapshots;

pub use directory::{DirectoryWatcher, ReloadCounts};
pub use series::OTHER;
pub use snapshots::{Snapshot, SnapshotCounts};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::artifacts::CompiledHandler;
use crate::config::{Isolation, SnapshotPolicy};
use crate::engine::Cancel;
use crate::error::{Error, Result};
use crate::names;
use crate::runtime::{Invocation, InvocationPath, Runtime, Target};
use crate::stats::{HandlerFigures, HandlerSeries};
use series::SeriesSlots;
use snapshots::{HandlerSnapshot, Snapshots};

/// Checks a handler name: `[a-z0-9][a-z0-9_-]{0,63}`. A name is a key in a
/// map, never a path.
///
/// # Errors
///
/// [`Error::InvalidName`] saying what is wrong.
pub fn check_name(name: &str) -> Result<()> {
    match names::problem(name) {
        Some(why) => Err(Error::InvalidName(name.to_owned(), why)),
        None => Ok(()),
    }
}

/// The `*.js` files in `dir`, sorted, each with the name it registers
/// under (its file stem): what `nexus serve --handlers` and `nexus cache
/// warm --handlers` load.
///
/// # Errors
///
/// When `dir` cannot be read.
pub fn handler_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "js") && path.is_file())
        .filter_map(|path| {
            let name = path.file_stem()?.to_string_lossy().into_owned();
            Some((name, path))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// What a registration may set for its handler, each in place of the
/// settings' (`None`: theirs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerOptions {
    /// Its snapshot policy: `eager` for a handler whose top level reads
    /// the clock harmlessly (a cache's timestamp), `off` for one that must
    /// evaluate its module per call.
    pub snapshot: Option<SnapshotPolicy>,
    /// Whether its calls may reuse an instance an earlier call used.
    pub isolation: Option<Isolation>,
}

/// One registered handler.
pub struct Handler {
    /// Its name: the key it is registered under.
    pub name: String,
    /// Its bytecode (compiled as `<name>.js`, the file its stack traces
    /// show, so it shares cache entries with `nexus run <name>.js`).
    pub compiled: CompiledHandler,
    invocations: AtomicU64,
    snapshot: Arc<HandlerSnapshot>,
    /// Its calls' counters: kept across re-registrations of its name.
    series: Arc<HandlerSeries>,
    isolation: Isolation,
    /// This registration's number, never given twice: what its kept
    /// instances are filed under.
    version: u64,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("name", &self.name)
            .field("compiled", &self.compiled)
            .field("invocations", &self.invocations)
            .field("snapshot", &self.snapshot)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HandlerSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HandlerSnapshot")
            .field(&self.state())
            .finish()
    }
}

impl Handler {
    /// Invocations of this version of the handler so far.
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Relaxed)
    }

    /// Its calls by outcome, their durations and its console lines, since
    /// its name was registered (re-registering keeps them).
    pub fn figures(&self) -> HandlerFigures {
        self.series.figures()
    }

    /// Whether the metrics name it, or count it under `_other` (registered
    /// past `max_handler_series`).
    pub fn has_own_series(&self) -> bool {
        !self.series.is_folded()
    }

    /// Where its snapshot stands (and why, if refused or failed).
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot.state()
    }

    /// Its snapshot policy: its own, if it was registered with one, else
    /// the server's (`off` whatever either says when `max_snapshots` is 0).
    pub fn snapshot_policy(&self) -> SnapshotPolicy {
        self.snapshot.policy()
    }

    /// Whether its calls each get a fresh instance, or may reuse one
    /// (`per-call` whatever it asked for when `reuse_max_instances` is 0).
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The path its next call takes.
    pub fn path(&self) -> InvocationPath {
        match self.snapshot.prepared() {
            Some(_) => InvocationPath::Prepared,
            None => InvocationPath::Plain,
        }
    }
}

/// Handlers by name, over one runtime, with the snapshot policy of its
/// settings (`snapshot`, `snapshot_after`, `max_snapshots`). `Send + Sync`.
pub struct Handlers {
    runtime: Arc<Runtime>,
    by_name: RwLock<BTreeMap<String, Arc<Handler>>>,
    /// The bytecode bytes the registered handlers hold, together: bounded
    /// by `max_registry_bytes` (changed only under `by_name`'s write lock).
    held_bytes: AtomicU64,
    snapshots: Snapshots,
    /// Which handlers the metrics name.
    series: SeriesSlots,
    /// The handlers directory, where it is the registry.
    directory: Option<directory::Directory>,
    /// The last registration's version.
    versions: AtomicU64,
}

impl Handlers {
    /// No handlers yet, over `runtime`; starts the snapshot worker unless
    /// snapshots are off.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self {
            snapshots: Snapshots::start(runtime.clone()),
            series: SeriesSlots::new(runtime.config().max_handler_series as usize),
            runtime,
            by_name: RwLock::default(),
            held_bytes: AtomicU64::new(0),
            directory: None,
            versions: AtomicU64::new(0),
        }
    }

    /// The handlers in `dir`, over `runtime`: each `NAME.js` registered
    /// as `NAME` (with `NAME.snapshot`'s policy, if there is one). The
    /// directory is then the registry: [`register`](Self::register) and
    /// [`remove`](Self::remove) write and delete its files, and
    /// [`watch`](Self::watch) applies changes others make.
    ///
    /// # Errors
    ///
    /// When `dir` cannot be read, or a file in it cannot be registered.
    pub fn open(runtime: Arc<Runtime>, dir: &Path) -> Result<Self> {
        let mut handlers = Self::new(runtime);
        handlers.directory = Some(directory::Directory::new(dir));
        handlers.sync(true)?;
        Ok(handlers)
    }

    /// The handlers directory, where it is the registry.
    pub fn directory(&self) -> Option<&Path> {
        self.directory.as_ref().map(|d| d.path())
    }

    /// Why `name`'s newest file in the handlers directory is not what
    /// serves: it did not compile (the previous version serves).
    pub fn reload_error(&self, name: &str) -> Option<String> {
        self.directory.as_ref()?.reload_error(name)
    }

    /// Changes applied from the handlers directory so far, by result.
    pub fn reload_counts(&self) -> ReloadCounts {
        self.directory
            .as_ref()
            .map_or_else(ReloadCounts::default, |d| d.counts())
    }

    /// How snapshot builds ended so far.
    pub fn snapshot_counts(&self) -> SnapshotCounts {
        self.snapshots.counts()
    }

    /// The calls of the handlers folded into `_other` (registered past
    /// `max_handler_series`), together.
    pub fn other_figures(&self) -> HandlerFigures {
        self.series.other()
    }

    /// Handlers folded into `_other` so far.
    pub fn folded_series(&self) -> u64 {
        self.series.folded()
    }

    /// The runtime the handlers run on.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Compiles `source` and registers it as `name`, replacing any handler
    /// of that name, under the `handler_snapshots` and `handler_isolation`
    /// settings' policies for `name` if they have one, else the `snapshot`
    /// and `isolation` settings'. Answers the handler and whether it
    /// replaced one.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a bad name; [`Error::RegistryFull`] past
    /// `max_handlers` or `max_registry_bytes`; compiling's errors
    /// ([`Error::Compile`] with the position, the limits', `Busy`).
    pub fn register(&self, name: &str, source: &str) -> Result<(Arc<Handler>, bool)> {
        self.register_with(name, source, HandlerOptions::default())
    }

    /// [`register`](Self::register), with the handler's own policies in
    /// place of the settings'.
    ///
    /// # Errors
    ///
    /// As [`register`](Self::register).
    pub fn register_with(
        &self,
        name: &str,
        source: &str,
        options: HandlerOptions,
    ) -> Result<(Arc<Handler>, bool)> {
        let Some(dir) = &self.directory else {
            return self.install(name, source, options);
        };
        check_name(name)?;
        // Only a source that compiles, and fits, reaches the directory.
        let compiled = self.runtime.compile(&format!("{name}.js"), source)?;
        {
            let by_name = self.by_name.read().unwrap();
            self.check_count(&by_name, name)?;
            self.check_bytes(&by_name, name, compiled.bytecode.len() as u64)?;
        }
        dir.write(name, source, options)?;
        self.insert(name, compiled, options)
    }

    /// Compiles and registers `name`, in memory only.
    fn install(
        &self,
        name: &str,
        source: &str,
        options: HandlerOptions,
    ) -> Result<(Arc<Handler>, bool)> {
        check_name(name)?;
        // A new name past the count is refused before any compiling.
        self.check_count(&self.by_name.read().unwrap(), name)?;
        let compiled = self.runtime.compile(&format!("{name}.js"), source)?;
        self.insert(name, compiled, options)
    }

    /// Registers `compiled` as `name`, in memory only.
    fn insert(
        &self,
        name: &str,
        compiled: CompiledHandler,
        options: HandlerOptions,
    ) -> Result<(Arc<Handler>, bool)> {
        let config = self.runtime.config();
        let policy = (options.snapshot).or_else(|| config.handler_snapshots.get(name).copied());
        let isolation = match config.reuse_max_instances {
            0 => Isolation::PerCall,
            _ => (options.isolation)
                .or_else(|| config.handler_isolation.get(name).copied())
                .unwrap_or(config.isolation),
        };
        let mut by_name = self.by_name.write().unwrap();
        self.check_count(&by_name, name)?;
        let held = self.check_bytes(&by_name, name, compiled.bytecode.len() as u64)?;
        self.held_bytes.store(held, Relaxed);
        let series = match by_name.get(name) {
            Some(old) => old.series.clone(),
            None => self.series.take(),
        };
        let handler = Arc::new(Handler {
            name: name.to_owned(),
            snapshot: self.snapshots.register(name, compiled.clone(), policy),
            compiled,
            invocations: AtomicU64::new(0),
            series,
            isolation,
            version: self.versions.fetch_add(1, Relaxed) + 1,
        });
        let replaced = by_name.insert(name.to_owned(), handler.clone());
        drop(by_name);
        if let Some(old) = &replaced {
            self.runtime.forget_kept(old.version);
        }
        Ok((handler, replaced.is_some()))
    }

    /// What the handlers would hold with `name` at `size` bytes; refused
    /// past `max_registry_bytes`.
    fn check_bytes(
        &self,
        by_name: &BTreeMap<String, Arc<Handler>>,
        name: &str,
        size: u64,
    ) -> Result<u64> {
        let old = by_name
            .get(name)
            .map_or(0, |h| h.compiled.bytecode.len() as u64);
        let held = self.held_bytes.load(Relaxed) - old + size;
        let limit = self.runtime.config().max_registry_bytes;
        if held > limit {
            return Err(Error::RegistryFull {
                setting: "max_registry_bytes",
                detail: format!(
                    "{name}'s {size} bytes of bytecode would make the registered handlers \
                     hold {held} bytes, over {limit}"
                ),
            });
        }
        Ok(held)
    }

    /// Refuses a new `name` when `max_handlers` are registered.
    fn check_count(&self, by_name: &BTreeMap<String, Arc<Handler>>, name: &str) -> Result<()> {
        let max = self.runtime.config().max_handlers as usize;
        if by_name.len() >= max && !by_name.contains_key(name) {
            return Err(Error::RegistryFull {
                setting: "max_handlers",
                detail: format!("{max} handlers are registered, and {name:?} would be one more"),
            });
        }
        Ok(())
    }

    /// The bytecode bytes the registered handlers hold together.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes.load(Relaxed)
    }

    /// The handler registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Handler>> {
        self.by_name.read().unwrap().get(name).cloned()
    }

    /// Unregisters `name` (deleting its files, where the handlers
    /// directory is the registry); answers the handler it was.
    ///
    /// # Errors
    ///
    /// [`Error::ReadOnlyRegistry`] when the directory cannot be written.
    pub fn remove(&self, name: &str) -> Result<Option<Arc<Handler>>> {
        if let Some(dir) = &self.directory {
            dir.delete(name)?;
        }
        Ok(self.unregister(name))
    }

    /// Unregisters `name`, in memory only.
    fn unregister(&self, name: &str) -> Option<Arc<Handler>> {
        let mut by_name = self.by_name.write().unwrap();
        let removed = by_name.remove(name)?;
        self.series.give_back(&removed.series);
        self.held_bytes
            .fetch_sub(removed.compiled.bytecode.len() as u64, Relaxed);
        drop(by_name);
        self.runtime.forget_kept(removed.version);
        Some(removed)
    }

    /// Every handler, by name.
    pub fn list(&self) -> Vec<Arc<Handler>> {
        self.by_name.read().unwrap().values().cloned().collect()
    }

    /// At most `limit` handlers, by name, from the first after `after`
    /// (from the first of all without it), and whether more follow: a page
    /// costs its own length, however many are registered.
    pub fn page(&self, after: Option<&str>, limit: usize) -> (Vec<Arc<Handler>>, bool) {
        use std::ops::Bound::{Excluded, Unbounded};
        let by_name = self.by_name.read().unwrap();
        let from = after.map_or(Unbounded, Excluded);
        let mut handlers = by_name.range::<str, _>((from, Unbounded)).map(|(_, h)| h);
        let page: Vec<Arc<Handler>> = handlers.by_ref().take(limit).cloned().collect();
        (page, handlers.next().is_some())
    }

    /// Runs `handler` with `input` (JSON) in a fresh instance of its
    /// snapshot if one is loaded, else of the shared guest; `timeout` may
    /// shorten the configured timeout, never lengthen it.
    ///
    /// # Errors
    ///
    /// As [`Runtime::invoke`].
    pub fn invoke(
        &self,
        handler: &Handler,
        input: &str,
        timeout: Option<Duration>,
    ) -> Result<Invocation> {
        self.invoke_reporting_path(handler, input, timeout, None).1
    }

    /// [`invoke`](Self::invoke), answering the path the call took beside
    /// its outcome, whatever that is; `cancel` stops it (see
    /// [`Runtime::invoke_cancellable`]).
    pub fn invoke_reporting_path(
        &self,
        handler: &Handler,
        input: &str,
        timeout: Option<Duration>,
        cancel: Option<&Cancel>,
    ) -> (InvocationPath, Result<Invocation>) {
        let invocations = handler.invocations.fetch_add(1, Relaxed) + 1;
        let limit = self.runtime.config().timeout;
        let timeout = timeout.map(|t| t.min(limit));
        let prepared = self.snapshots.route(&handler.snapshot, invocations);
        let (path, target) = match &prepared {
            Some(prepared) => (InvocationPath::Prepared, Target::Prepared(prepared)),
            None => (InvocationPath::Plain, Target::plain(&handler.compiled)),
        };
        let series = Some(&*handler.series);
        let reuse = (handler.isolation == Isolation::Reuse).then_some(handler.version);
        (
            path,
            self.runtime
                .call(target, input, timeout, cancel, series, reuse),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lowercase_words_never_paths() {
        for good in ["a", "0", "hello", "my-handler_2", &"a".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "Hello",
            "a/b",
            "..",
            "a.js",
            "a b",
            "é",
            "a\0",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(check_name(bad), Err(Error::InvalidName(..))),
                "{bad:?}"
            );
        }
    }
}
