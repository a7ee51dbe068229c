//! Settings for a [`crate::Runtime`].

use std::path::PathBuf;

/// Where the runtime keeps its cache and how it bounds its work.
#[derive(Debug, Clone)]
pub struct Config {
    /// The capability-scoped cache directory (default `.nexus-cache`).
    pub cache_dir: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cache_dir: PathBuf::from(".nexus-cache"),
        }
    }
}
