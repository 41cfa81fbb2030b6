//! GitHub Actions workflow commands: `::error`/`::warning` annotations, `::group::` log
//! folding, and `$GITHUB_STEP_SUMMARY`. Outside Actions (`GITHUB_ACTIONS` not `true`) the same
//! calls print plain `error: …` lines and no folding markers, so local output stays readable.

use std::io::Write;

/// Whether we run under GitHub Actions.
pub fn in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// Escape a message (data) of a workflow command.
pub fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a property value (`title=…`) of a workflow command.
pub fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The `::error title=…::msg` line (or `error: title: msg` outside Actions).
pub fn error_line(title: &str, msg: &str) -> String {
    if in_actions() {
        format!(
            "::error title={}::{}",
            escape_property(title),
            escape_data(msg)
        )
    } else {
        format!("error: {title}: {msg}")
    }
}

/// The `::warning::msg` line (or `warning: msg` outside Actions).
pub fn warning_line(msg: &str) -> String {
    if in_actions() {
        format!("::warning::{}", escape_data(msg))
    } else {
        format!("warning: {msg}")
    }
}

/// Print an error annotation: on stdout under Actions (where it reads workflow commands),
/// else on stderr with the other diagnostics, so stdout stays what a script reads.
pub fn error(title: &str, msg: &str) {
    if in_actions() {
        crate::outln!("{}", error_line(title, msg));
    } else {
        crate::errln!("{}", error_line(title, msg));
    }
}

/// Print a warning annotation (stdout under Actions, else stderr).
pub fn warning(msg: &str) {
    if in_actions() {
        crate::outln!("{}", warning_line(msg));
    } else {
        crate::errln!("{}", warning_line(msg));
    }
}

/// Run `f` inside a folded log group (`::group::name` … `::endgroup::` under Actions).
pub fn group<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let on = in_actions();
    if on {
        crate::outln!("::group::{}", escape_data(name));
    }
    let out = f();
    if on {
        crate::outln!("::endgroup::");
    }
    out
}

/// Append Markdown to `$GITHUB_STEP_SUMMARY` when it is set; returns whether it was.
pub fn append_step_summary(markdown: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(false);
    };
    if path.is_empty() {
        return Ok(false);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(crate::secrets::redact(markdown).as_bytes())?;
    if !markdown.ends_with('\n') {
        f.write_all(b"\n")?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_the_actions_toolkit() {
        assert_eq!(escape_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(escape_property("a: b, c"), "a%3A b%2C c");
    }
}
