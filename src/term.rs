//! Terminal facts: whether to colour a stream, and ANSI escape sequences taken out of text
//! bound for a file.
//!
//! Colour is for people watching a terminal. Logs redirected to a file, `server.log` and
//! anything a script reads must be plain text, so colour is used only when the stream is a
//! terminal and `NO_COLOR` (<https://no-color.org>) is unset or empty. Engines decide their
//! own colours: they are told `NO_COLOR=1` (their output always goes to a file), and the
//! copies of their logs we write are stripped of escape sequences anyway, since not every
//! engine honours it.

use std::borrow::Cow;
use std::io::IsTerminal;

/// `NO_COLOR` is set to a non-empty value.
pub fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Colour stderr (logs, progress): it is a terminal and `NO_COLOR` is not set.
pub fn colour_stderr() -> bool {
    std::io::stderr().is_terminal() && !no_color()
}

/// `bytes` without ANSI escape sequences: CSI (`ESC [ … final byte`, colours and cursor
/// moves), OSC (`ESC ] … BEL` or `ESC \`, hyperlinks, titles) and two-byte escapes. Text
/// without any ESC byte is returned as it is.
pub fn strip_ansi(bytes: &[u8]) -> Cow<'_, [u8]> {
    const ESC: u8 = 0x1b;
    if !bytes.contains(&ESC) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != ESC {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            // CSI: parameter and intermediate bytes (0x20–0x3f), then one final byte.
            Some(b'[') => {
                let mut j = i + 2;
                while j < bytes.len() && (0x20..=0x3f).contains(&bytes[j]) {
                    j += 1;
                }
                i = (j + 1).min(bytes.len());
            }
            // OSC: up to BEL or ST (ESC \).
            Some(b']') => {
                let mut j = i + 2;
                loop {
                    match bytes.get(j) {
                        None => break,
                        Some(0x07) => {
                            j += 1;
                            break;
                        }
                        Some(&ESC) if bytes.get(j + 1) == Some(&b'\\') => {
                            j += 2;
                            break;
                        }
                        Some(_) => j += 1,
                    }
                }
                i = j;
            }
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_cursor_moves_and_links_are_removed_text_is_kept() {
        let s = "\x1b[2m2026-01-01T00:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m ready \x1b[1;31mred\x1b[m\x1b[2K\r\x1b]8;;http://x\x07link\x1b]8;;\x1b\\ end";
        assert_eq!(
            String::from_utf8(strip_ansi(s.as_bytes()).into_owned()).unwrap(),
            "2026-01-01T00:00:00Z  INFO ready red\rlink end"
        );
        assert!(matches!(strip_ansi(b"plain text"), Cow::Borrowed(_)));
        // A sequence cut off at the end of a log is dropped, not left half.
        assert_eq!(&*strip_ansi(b"tail \x1b[3"), b"tail ");
        assert_eq!(
            &*strip_ansi("ünï \x1b[0mcode".as_bytes()),
            "ünï code".as_bytes()
        );
    }
}
