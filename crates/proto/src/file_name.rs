//! Turning the name a sender gives a file into one that is safe to create in a downloads
//! directory: a single path component, no control characters, no name Windows reserves for a
//! device, not too long. The sender's name is never trusted as a path (`../../etc/passwd`,
//! `/abs/path` and `a/../../b` all become plain names).

/// Longest name produced, in bytes (the usual file system limit).
pub const MAX_FILE_NAME_BYTES: usize = 200;

/// Names Windows keeps for devices, with or without an extension.
const DEVICES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// A safe base name for the file a sender called `offered`. Always returns a usable name: the
/// last path component, with control characters, separators and characters Windows refuses
/// replaced by `_`, leading dots and trailing dots and spaces removed, a device name prefixed
/// with `_`, and at most `MAX_FILE_NAME_BYTES` bytes (keeping the extension); `file` if nothing
/// is left.
pub fn safe_file_name(offered: &str) -> String {
    let last = offered
        .rsplit(['/', '\\'])
        .find(|part| !part.trim().is_empty())
        .unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|ch| match ch {
            c if c.is_control() => '_',
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let mut name = if trimmed.is_empty() {
        "file".to_owned()
    } else {
        trimmed.to_owned()
    };
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    if DEVICES.contains(&stem.trim_end()) {
        name.insert(0, '_');
    }
    shorten(name)
}

/// Cuts `name` to `MAX_FILE_NAME_BYTES`, keeping a short extension, at a character boundary.
fn shorten(name: String) -> String {
    if name.len() <= MAX_FILE_NAME_BYTES {
        return name;
    }
    let extension = name
        .rfind('.')
        .map(|dot| &name[dot..])
        .filter(|ext| ext.len() <= 16)
        .unwrap_or("");
    let mut end = MAX_FILE_NAME_BYTES - extension.len();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{extension}", &name[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_plain_safe_names() {
        for (offered, safe) in [
            ("report.pdf", "report.pdf"),
            ("../../etc/passwd", "passwd"),
            ("/abs/path", "path"),
            ("a/../../b", "b"),
            ("..", "file"),
            ("...", "file"),
            ("", "file"),
            ("dir/", "dir"),
            ("C:\\Windows\\system.ini", "system.ini"),
            ("nul\0byte", "nul_byte"),
            ("new\nline.txt", "new_line.txt"),
            (".bashrc", "bashrc"),
            ("CON", "_CON"),
            ("com1.txt", "_com1.txt"),
            ("what?.txt", "what_.txt"),
            ("trailing. ", "trailing"),
            ("日本語.txt", "日本語.txt"),
        ] {
            assert_eq!(safe_file_name(offered), safe, "{offered:?}");
        }
    }

    #[test]
    fn long_names_are_cut_keeping_the_extension() {
        let name = safe_file_name(&format!("{}.tar.gz", "é".repeat(300)));
        assert!(name.len() <= MAX_FILE_NAME_BYTES);
        assert!(name.ends_with(".gz"));
        assert!(name.starts_with('é'));
    }
}
