//! A small owner-only file of names and the value trusted for each, one `name value` pair per
//! line: the client's known relays (address → certificate fingerprint, like SSH's known_hosts)
//! and known companions (relay and nickname → identity key). Lines starting with `#` and lines
//! that do not parse are kept as they are, so a hand-edited file is never silently rewritten.

use std::io;
use std::path::{Path, PathBuf};

use crate::files::write_private;

/// The file's contents in memory, in file order.
#[derive(Debug)]
pub struct PinFile {
    path: PathBuf,
    lines: Vec<String>,
}

impl PinFile {
    /// The pins in `path`; a missing file is an empty one (created on the first `set`).
    pub fn load(path: &Path) -> io::Result<Self> {
        let lines = match std::fs::read_to_string(path) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err),
        };
        Ok(Self {
            path: path.into(),
            lines,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value pinned for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lines.iter().find_map(|line| parse(line, name))
    }

    /// Pins `value` for `name` (replacing an earlier value) and writes the file. What other
    /// processes wrote since this one loaded it is read again first and kept.
    pub fn set(&mut self, name: &str, value: &str) -> io::Result<()> {
        debug_assert!(!name.contains(char::is_whitespace));
        *self = Self::load(&self.path)?;
        let line = format!("{name} {value}");
        match self.lines.iter().position(|l| parse(l, name).is_some()) {
            Some(at) => self.lines[at] = line,
            None => self.lines.push(line),
        }
        let mut text = self.lines.join("\n");
        text.push('\n');
        write_private(&self.path, text.as_bytes())
    }
}

fn parse<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (first, value) = line.trim().split_once(char::is_whitespace)?;
    (first == name && !line.starts_with('#')).then(|| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_survive_a_reload_and_are_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known_hosts");
        std::fs::write(&path, "# my relays\nbroken-line\n").unwrap();
        let mut pins = PinFile::load(&path).unwrap();
        assert_eq!(pins.get("a:1"), None);
        pins.set("a:1", "AA").unwrap();
        pins.set("b:2", "BB").unwrap();
        pins.set("a:1", "CC").unwrap();
        let again = PinFile::load(&path).unwrap();
        assert_eq!(again.get("a:1"), Some("CC"));
        assert_eq!(again.get("b:2"), Some("BB"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# my relays\nbroken-line\na:1 CC\nb:2 BB\n");
    }

    #[test]
    fn two_writers_keep_each_others_pins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("companions");
        let mut first = PinFile::load(&path).unwrap();
        let mut second = PinFile::load(&path).unwrap();
        first.set("x/a", "1").unwrap();
        second.set("x/b", "2").unwrap();
        let again = PinFile::load(&path).unwrap();
        assert_eq!((again.get("x/a"), again.get("x/b")), (Some("1"), Some("2")));
    }
}
