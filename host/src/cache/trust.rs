//! Who may have written what the cache reads. The cache holds native code,
//! which the host maps as executable (see docs/cache.md's trust boundary), so
//! whoever can write its directories could run code in the host.
//!
//! A cache directory must be this user's. A seed directory, made once (at
//! an image's build, by root) and then only read (by a pod's non-root
//! user), may be root's too. Neither may be writable by group or others;
//! a seed's files are held to the same rule one by one, since they sit in
//! directories everybody may read.

use std::io;
use std::path::Path;

use cap_std::fs::{Metadata, MetadataExt as _};

/// Whose directories and files are trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owners {
    /// Only this process's effective user.
    ThisUser,
    /// This user or root: for a seed.
    ThisUserOrRoot,
}

impl Owners {
    fn admit(self, uid: u32) -> bool {
        uid == me() || (self == Owners::ThisUserOrRoot && uid == 0)
    }

    fn describe(self) -> String {
        match self {
            Owners::ThisUser => format!("this user (uid {})", me()),
            Owners::ThisUserOrRoot => format!("this user (uid {}) or root", me()),
        }
    }

    /// How to mend a directory refused for `why`.
    fn fix(self, why: Why) -> String {
        let elsewhere =
            "or choose a directory only you can write with --cache-dir / NEXUS_CACHE_DIR";
        match (self, why) {
            (Owners::ThisUser, Why::Mode) => {
                format!("fix: `chmod go-w` it as its owner, {elsewhere}")
            }
            (Owners::ThisUser, Why::Owner) => format!(
                "fix: `chmod` cannot change an owner: remove it (as its owner or root) so \
                 that nexus makes its own, `chown -R {}` it as root, {elsewhere}",
                me()
            ),
            (Owners::ThisUser, Why::Kind) => format!(
                "fix: remove it, so that nexus makes a real directory in its place, {elsewhere}"
            ),
            (Owners::ThisUserOrRoot, _) => "fix: make it a real directory owned by root or by \
                 this user, and `chmod -R go-w` it; a seed is written once, by `nexus cache \
                 warm`, then only read"
                .to_owned(),
        }
    }
}

/// Why a directory is refused: what the fix depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    /// Not a directory (a file, or a symbolic link).
    Kind,
    /// Someone else's.
    Owner,
    /// Writable by group or others.
    Mode,
}

/// Refuses `path` (a cache or seed directory's `v1`, or one inside it)
/// when it is a symbolic link: whoever can change a link's target can
/// point the cache at code of their choosing, and a link is not what
/// nexus makes.
pub(super) fn refuse_link(path: &Path, owners: Owners) -> io::Error {
    refusal(
        path,
        "is a symbolic link, not a directory",
        owners,
        Why::Kind,
    )
}

fn refusal(path: &Path, why: &str, owners: Owners, kind: Why) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "{} {why}: anyone who can write it could plant native code, so it is not used ({})",
            path.display(),
            owners.fix(kind)
        ),
    )
}

fn me() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Refuses a directory `owners` do not own, or that group or others may
/// write, with why and the fix.
pub(super) fn check_dir(path: &Path, meta: &Metadata, owners: Owners) -> io::Result<()> {
    if !meta.is_dir() {
        return Err(refusal(path, "is not a directory", owners, Why::Kind));
    }
    if !owners.admit(meta.uid()) {
        let why = format!(
            "is owned by uid {}, not by {}",
            meta.uid(),
            owners.describe()
        );
        return Err(refusal(path, &why, owners, Why::Owner));
    }
    if meta.mode() & 0o022 != 0 {
        let why = format!(
            "is writable by group or others (mode {:o})",
            meta.mode() & 0o7777
        );
        return Err(refusal(path, &why, owners, Why::Mode));
    }
    Ok(())
}

/// Why a file `owners` do not own, or that group or others may write, is
/// refused; `Ok` if it is not.
pub(super) fn check_file(meta: &Metadata, owners: Owners) -> Result<(), String> {
    if owners.admit(meta.uid()) && meta.mode() & 0o022 == 0 {
        return Ok(());
    }
    Err(format!(
        "owned by uid {} with mode {:o}: its files must be owned by {} and writable by nobody else",
        meta.uid(),
        meta.mode() & 0o7777,
        owners.describe()
    ))
}
