//! One CSV record split into fields with RFC 4180 quoting (a quoted field may hold commas,
//! `""` is a literal quote). Shared by the BurstGPT dataset reader and the amd-smi telemetry
//! parser, the two places that read CSV line by line.

/// Split one CSV record (no line terminator) into its fields.
pub fn fields(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}
