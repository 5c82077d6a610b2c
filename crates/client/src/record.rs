//! The small text files that let transfers survive restarts (`resume.rs`, `offers.rs`): a first
//! line naming the format, then one `KEY VALUE` line per field in a fixed order. Read back
//! only from regular files of bounded size; anything else is passed over.

use std::io::Read;
use std::path::Path;
use std::str::Lines;

/// The fields of a record, read in order.
pub(crate) struct Fields<'a> {
    lines: Lines<'a>,
}

impl<'a> Fields<'a> {
    /// The fields of `text`, if its first line is `magic`.
    pub fn open(text: &'a str, magic: &str) -> Option<Self> {
        let mut lines = text.lines();
        (lines.next()? == magic).then_some(Self { lines })
    }

    /// The next field's value, if it is `key`.
    pub fn next(&mut self, key: &str) -> Option<&'a str> {
        self.lines.next()?.strip_prefix(key)?.strip_prefix(' ')
    }
}

/// The text of the regular file at `path` (not a link), if it is at most `max` bytes.
pub(crate) fn read_small(path: &Path, max: u64) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > max {
        return None;
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(max)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}
