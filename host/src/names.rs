//! Handler names: `[a-z0-9][a-z0-9_-]{0,63}`, one rule wherever a name is
//! given (a registration, a `--handlers` file's stem, a setting). A name is
//! a key in a map, never a path.
//!
//! Layer: a leaf.

/// The longest handler name.
const MAX_NAME: usize = 64;

/// What is wrong with `name` as a handler name, if anything.
pub(crate) fn problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    match chars.next() {
        None => return Some("it is empty"),
        Some(c) if !(c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            return Some("it must start with a-z or 0-9")
        }
        Some(_) => {}
    }
    if name.len() > MAX_NAME {
        return Some("it is longer than 64 characters");
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return Some("only a-z, 0-9, `_` and `-` are allowed");
    }
    None
}
