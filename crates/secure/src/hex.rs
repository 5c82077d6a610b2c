//! Lowercase hex for keys in files and on screen.

/// `bytes` as lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0xF)] as char);
    }
    out
}

/// Exactly `N` bytes from hex (either case); `None` for anything else.
pub fn from_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != N * 2 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0; N];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_junk() {
        let bytes = [0x00, 0xAB, 0xFF, 0x10];
        assert_eq!(to_hex(&bytes), "00abff10");
        assert_eq!(from_hex::<4>("00ABff10"), Some(bytes));
        assert_eq!(from_hex::<4>("00abff1"), None);
        assert_eq!(from_hex::<4>("00abff1g"), None);
        assert_eq!(from_hex::<2>("é1"), None);
    }
}
