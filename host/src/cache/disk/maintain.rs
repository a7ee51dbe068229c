//! Maintenance, for `nexus cache verify` and `clear`: every entry read and
//! checked, or every file the cache owns removed, and nothing else.

use std::ffi::OsString;
use std::io;
use std::path::Path;

use cap_std::fs::Dir;

use super::super::format;
use super::read::Refused;
use super::write::is_temp;
use super::DiskTier;
use crate::cache::Artifact;

/// What `verify` found: files checked, and the ones refused (and removed).
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Files read and checked.
    pub checked: u64,
    /// Each damaged file's path and what was wrong with it.
    pub damaged: Vec<(String, String)>,
}

impl DiskTier {
    /// Reads and checks every entry; damaged ones are removed and listed.
    pub fn verify(&self) -> io::Result<VerifyReport> {
        let dir = self.open_or_err()?;
        let mut report = VerifyReport::default();
        for kind in Artifact::ALL {
            for name in Self::owned_files(dir, kind)? {
                if is_temp(&name) {
                    continue;
                }
                report.checked += 1;
                let path = Path::new(kind.dir()).join(&name);
                let damage = match kind.key_of(&name) {
                    None => Some("not named after a key".to_owned()),
                    Some(key) => match self.read_entry(dir, &path) {
                        Err(Refused::Io(e)) => Some(format!("unreadable: {e}")),
                        Err(Refused::Damaged(damage)) => Some(damage.to_string()),
                        Ok((_, bytes, _)) => format::decode(kind, &key, &bytes)
                            .err()
                            .map(|d| d.to_string()),
                    },
                };
                if let Some(mut why) = damage {
                    if let Err(e) = dir.remove_file(&path) {
                        why = format!("{why}; could not remove it: {e}");
                    }
                    report
                        .damaged
                        .push((self.shown(&path).display().to_string(), why));
                }
            }
        }
        Ok(report)
    }

    /// Removes every file the cache owns, and nothing else. Returns how many.
    pub fn clear(&self) -> io::Result<u64> {
        let dir = self.open_or_err()?;
        let mut removed = 0;
        for kind in Artifact::ALL {
            for name in Self::owned_files(dir, kind)? {
                if is_temp(&name) || kind.key_of(&name).is_some() {
                    dir.remove_file(Path::new(kind.dir()).join(&name))?;
                    removed += 1;
                }
            }
            let _ = dir.remove_dir(kind.dir());
        }
        if let Some(root_dir) = &self.root_dir {
            let _ = root_dir.remove_dir(crate::cache::VERSION_DIR);
        }
        let mut index = self.index.lock().unwrap();
        *index = index.emptied();
        Ok(removed)
    }

    pub(super) fn open_or_err(&self) -> io::Result<&Dir> {
        self.dir.as_ref().ok_or_else(|| {
            io::Error::other(format!(
                "cannot use the cache directory {}: {}",
                self.root.display(),
                self.unavailable.as_deref().unwrap_or("unknown error")
            ))
        })
    }

    /// The names of the files of `kind`'s directory the cache owns: entries
    /// and temporaries, whatever bytes their names hold.
    pub(super) fn owned_files(dir: &Dir, kind: Artifact) -> io::Result<Vec<OsString>> {
        match dir.read_dir(kind.dir()) {
            Ok(entries) => Ok(entries
                .flatten()
                .map(|e| e.file_name())
                .filter(|n| {
                    is_temp(n) || n.as_encoded_bytes().ends_with(kind.extension().as_bytes())
                })
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
