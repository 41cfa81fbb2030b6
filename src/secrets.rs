//! Configured secrets, and the one redaction every output goes through.
//!
//! Tokens reach this program through the environment (`HF_TOKEN`, `OPENAI_API_KEY`,
//! `GITHUB_TOKEN`/`GH_TOKEN`, a publish sink's `token_env`) and leave it in headers. A server
//! may echo them back — in a 401 or 500 body, in a JSON error — and from there they would land
//! in an error message, `error_samples`, `status.json`, a log or a collected table. Rather than
//! trusting every such path to remember, the values themselves are registered once, here, and
//! every sink replaces them by value: the file writer ([`crate::fsutil`]), the binaries'
//! printing ([`outln!`](crate::outln) and friends, which the project's clippy config makes the
//! only way to print), the log writer ([`LogWriter`]) and the panic hook ([`install_panic_hook`]).
//!
//! A value shorter than [`MIN_LEN`] bytes is not treated as a secret: replacing every
//! occurrence of, say, `abc` would corrupt unrelated output while protecting nothing.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{LazyLock, RwLock};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Shortest value treated as a secret.
pub const MIN_LEN: usize = 6;

/// Environment variables that hold secrets whatever the configuration says.
pub const ENV_VARS: &[&str] = &[
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "GH_TOKEN",
];

/// The registered values, longest first (so a secret containing another is replaced whole);
/// filled from [`ENV_VARS`] on first use.
static SECRETS: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| {
    let mut v = Vec::new();
    for name in ENV_VARS {
        if let Ok(val) = std::env::var(name) {
            insert(&mut v, val);
        }
    }
    RwLock::new(v)
});

fn insert(v: &mut Vec<String>, value: String) {
    let value = value.trim().to_string();
    if value.len() < MIN_LEN || v.contains(&value) {
        return;
    }
    // A value that JSON escapes differently is also looked for in its escaped form (a server
    // that echoes it inside a JSON string).
    let escaped = serde_json::to_string(&value).expect("a string serialises");
    let escaped = &escaped[1..escaped.len() - 1];
    if escaped != value && !v.iter().any(|s| s == escaped) {
        v.push(escaped.to_string());
    }
    v.push(value);
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Treat `value` as a secret from now on.
pub fn register(value: &str) {
    insert(
        &mut SECRETS.write().expect("secret registry"),
        value.to_string(),
    );
}

/// Treat the value of environment variable `name` (when set) as a secret from now on: for
/// variables named by configuration, such as a publish sink's `token_env`.
pub fn register_env(name: &str) {
    if let Ok(v) = std::env::var(name) {
        register(&v);
    }
}

/// Fill the registry from the environment now (it also fills itself on first use).
pub fn init() {
    LazyLock::force(&SECRETS);
}

/// How many bytes of a secret, cut at the start or end of a text (the tail of a log, a
/// truncated body), are still treated as that secret.
const MIN_PARTIAL: usize = 8;

/// `text` with every registered secret replaced by [`REDACTED`], including a piece of one at
/// least [`MIN_PARTIAL`] bytes long that the text starts or ends with (a cut-off tail or head).
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().expect("secret registry");
    if secrets.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for s in secrets.iter() {
        if out.contains(s.as_str()) {
            out = Cow::Owned(out.replace(s.as_str(), REDACTED));
        }
        if let Some(k) = partial_suffix(&out, s) {
            let keep = out.len() - k;
            out = Cow::Owned(format!("{}{REDACTED}", &out[..keep]));
        }
        if let Some(k) = partial_prefix(&out, s) {
            out = Cow::Owned(format!("{REDACTED}{}", &out[k..]));
        }
    }
    out
}

/// The length of the longest proper prefix of `secret` that `text` ends with, if at least
/// [`MIN_PARTIAL`] bytes.
fn partial_suffix(text: &str, secret: &str) -> Option<usize> {
    let max = (secret.len() - 1).min(text.len());
    (MIN_PARTIAL..=max)
        .rev()
        .find(|&k| secret.is_char_boundary(k) && text.ends_with(&secret[..k]))
}

/// The length of the longest proper suffix of `secret` that `text` starts with, if at least
/// [`MIN_PARTIAL`] bytes.
fn partial_prefix(text: &str, secret: &str) -> Option<usize> {
    let max = (secret.len() - 1).min(text.len());
    (MIN_PARTIAL..=max).rev().find(|&k| {
        let from = secret.len() - k;
        secret.is_char_boundary(from) && text.starts_with(&secret[from..])
    })
}

/// [`redact`] for bytes that may not be text: text is redacted, anything else (a PNG, a zip)
/// is returned as it is, since replacing bytes in it would corrupt it.
pub fn redact_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    match std::str::from_utf8(bytes) {
        Ok(t) => match redact(t) {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        },
        Err(_) => Cow::Borrowed(bytes),
    }
}

/// Write formatted text to stdout or stderr, redacted. Errors (a closed pipe) are ignored, as
/// there is nowhere left to report them.
#[doc(hidden)]
pub fn emit(stderr: bool, args: std::fmt::Arguments<'_>, newline: bool) {
    let mut text = std::fmt::format(args);
    if newline {
        text.push('\n');
    }
    let text = redact(&text);
    if stderr {
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    } else {
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// `println!`, with secrets redacted.
#[macro_export]
macro_rules! outln {
    () => { $crate::secrets::emit(false, format_args!(""), true) };
    ($($t:tt)*) => { $crate::secrets::emit(false, format_args!($($t)*), true) };
}

/// `print!`, with secrets redacted.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::secrets::emit(false, format_args!($($t)*), false) };
}

/// `eprintln!`, with secrets redacted.
#[macro_export]
macro_rules! errln {
    () => { $crate::secrets::emit(true, format_args!(""), true) };
    ($($t:tt)*) => { $crate::secrets::emit(true, format_args!($($t)*), true) };
}

/// `eprint!`, with secrets redacted.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::secrets::emit(true, format_args!($($t)*), false) };
}

/// The log output: stderr, each event redacted (`tracing`'s formatter writes an event in one
/// `write`).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stderr().lock().write_all(&redact_bytes(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Print panics (their message may quote a server's answer) through [`redact`].
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let name = std::thread::current()
            .name()
            .unwrap_or("<unnamed>")
            .to_string();
        emit(
            true,
            format_args!("thread '{name}' panicked{at}:\n{msg}"),
            true,
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_escaped_and_cut_off_secrets_are_replaced() {
        register("sk-unit-test-secret-0123456789");
        register("tok\"with\\quote-9876");
        register("abc");
        let s = "Authorization: Bearer sk-unit-test-secret-0123456789; again sk-unit-test-secret-0123456789";
        assert_eq!(
            redact(s),
            "Authorization: Bearer [redacted]; again [redacted]"
        );
        assert_eq!(
            redact(r#"{"h": "tok\"with\\quote-9876"}"#),
            r#"{"h": "[redacted]"}"#
        );
        // Too short to be a secret.
        assert_eq!(redact("abc abc"), "abc abc");
        // A tail that starts inside the secret, a head that ends inside it.
        assert_eq!(redact("cret-0123456789 rest"), "[redacted] rest");
        assert_eq!(redact("head sk-unit-test-s"), "head [redacted]");
        // Short overlaps are left alone.
        assert_eq!(redact("sk-unit"), "sk-unit");
        let png = [0x89u8, b'P', b'N', b'G', 0xff];
        assert_eq!(&*redact_bytes(&png), &png);
    }
}
