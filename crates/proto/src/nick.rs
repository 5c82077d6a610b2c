//! Nickname rules, shared by the relay (which enforces them) and the client (which checks before
//! sending, to answer at once).

/// Most characters (Unicode scalar values) a nickname may have.
pub const MAX_NICK_CHARS: usize = 32;
/// Most UTF-8 bytes a nickname may take (32 characters of at most 4 bytes).
pub const MAX_NICK_BYTES: usize = MAX_NICK_CHARS * 4;

/// Why a nickname was refused. The `Display` text is what users are shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NickError {
    /// Nothing was given.
    #[error("a nickname cannot be empty")]
    Empty,
    /// More than `MAX_NICK_CHARS` characters.
    #[error("a nickname has at most 32 characters (this one has {0})")]
    TooLong(usize),
    /// Contains a space, tab or other white space.
    #[error("a nickname cannot contain spaces or other white space")]
    Whitespace,
    /// Contains a control character.
    #[error("a nickname cannot contain control characters (found U+{0:04X})")]
    Control(u32),
    /// Contains an invisible formatting character that could make two names look alike.
    #[error("a nickname cannot contain invisible characters (found U+{0:04X})")]
    Invisible(u32),
    /// Starts with `/`, which the client reads as a command.
    #[error("a nickname cannot start with '/' (that is how commands start)")]
    LeadingSlash,
    /// Someone connected already uses it (compared without regard to case).
    #[error("the nickname {0} is already taken")]
    Taken(String),
    /// A client asked to chat with itself.
    #[error("you cannot chat with yourself")]
    Yourself,
}

/// Checks `nick` against the rules: 1–32 characters, Unicode letters and symbols allowed, no white
/// space, no control or invisible formatting characters, not starting with `/`.
pub fn validate_nick(nick: &str) -> Result<(), NickError> {
    if nick.is_empty() {
        return Err(NickError::Empty);
    }
    let chars = nick.chars().count();
    if chars > MAX_NICK_CHARS {
        return Err(NickError::TooLong(chars));
    }
    if nick.starts_with('/') {
        return Err(NickError::LeadingSlash);
    }
    for ch in nick.chars() {
        if ch.is_control() {
            return Err(NickError::Control(ch as u32));
        }
        if ch.is_whitespace() {
            return Err(NickError::Whitespace);
        }
        if is_invisible(ch) {
            return Err(NickError::Invisible(ch as u32));
        }
    }
    Ok(())
}

/// The key under which nicknames are compared for uniqueness: `Nick1` and `nick1` are the
/// same, and so are names that differ only in Unicode representation (a precomposed `é` and `e`
/// with a combining accent; fullwidth `Ｎｉｃｋ` and `Nick`): NFKC, then lowercase, then NFKC
/// again (lowercasing can denormalise).
pub fn fold_nick(nick: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let lower: String = nick.nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect()
}

/// Default-ignorable and bidirectional formatting characters: they render as nothing, so a name
/// containing one can pass for another.
fn is_invisible(ch: char) -> bool {
    matches!(ch as u32,
        0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180B..=0x180F
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
        | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFF8 | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_unicode_names() {
        for nick in [
            "Nick1",
            "a",
            "Зоя",
            "李小龙",
            "أحمد",
            "😀party",
            "x".repeat(32).as_str(),
        ] {
            assert_eq!(validate_nick(nick), Ok(()), "{nick}");
        }
    }

    #[test]
    fn refuses_what_the_rules_exclude() {
        assert_eq!(validate_nick(""), Err(NickError::Empty));
        assert_eq!(validate_nick(&"é".repeat(33)), Err(NickError::TooLong(33)));
        assert_eq!(validate_nick("two words"), Err(NickError::Whitespace));
        assert_eq!(validate_nick("tab\there"), Err(NickError::Control(9)));
        assert_eq!(validate_nick("nbsp\u{a0}"), Err(NickError::Whitespace));
        assert_eq!(validate_nick("bell\u{7}"), Err(NickError::Control(7)));
        assert_eq!(
            validate_nick("esc\u{1b}[31m"),
            Err(NickError::Control(0x1b))
        );
        assert_eq!(
            validate_nick("zero\u{200b}width"),
            Err(NickError::Invisible(0x200b))
        );
        assert_eq!(
            validate_nick("rtl\u{202e}"),
            Err(NickError::Invisible(0x202e))
        );
        assert_eq!(validate_nick("/exit"), Err(NickError::LeadingSlash));
    }

    #[test]
    fn folding_ignores_case() {
        assert_eq!(fold_nick("NiCk"), fold_nick("nick"));
        assert_eq!(fold_nick("ЗОЯ"), fold_nick("зоя"));
        assert_ne!(fold_nick("nick1"), fold_nick("nick2"));
    }

    #[test]
    fn folding_ignores_unicode_representation() {
        assert_eq!(fold_nick("Andr\u{e9}"), fold_nick("Andre\u{301}"));
        assert_eq!(
            fold_nick("\u{ff2e}\u{ff49}\u{ff43}\u{ff4b}"),
            fold_nick("nick")
        );
        assert_ne!(fold_nick("Andre"), fold_nick("Andr\u{e9}"));
    }

    #[test]
    fn error_texts_name_the_rule() {
        assert_eq!(
            NickError::Taken("Nick1".into()).to_string(),
            "the nickname Nick1 is already taken"
        );
        assert!(NickError::TooLong(40).to_string().contains("at most 32"));
    }
}
