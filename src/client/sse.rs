//! Server-sent-event parsing for streamed completions, built for the hot path.
//!
//! Every streamed token passes through here, at up to hundreds of thousands of events per
//! second, so lines are split in place (a partial line is the only thing ever copied) and
//! each `data:` payload is read in one validating pass that keeps just the first choice's
//! text and the usage count; no JSON tree is built and nothing is allocated per event.
//! Accepts vLLM's and SGLang's shapes (usage in a trailing `choices: []` chunk) and
//! llama.cpp's (usage on the last choices chunk).

use std::borrow::Cow;

/// Splits a byte stream into lines across chunk boundaries.
#[derive(Default)]
pub struct LineSplitter {
    /// Bytes of a line that started in an earlier chunk and has not ended yet.
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feed one network chunk; `on_line` gets every complete line (without `\n`).
    pub fn feed(&mut self, mut chunk: &[u8], mut on_line: impl FnMut(&[u8])) {
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    self.partial.extend_from_slice(&chunk[..i]);
                    on_line(&self.partial);
                    self.partial.clear();
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(chunk);
                    return;
                }
            }
        }
        while let Some(i) = memchr::memchr(b'\n', chunk) {
            on_line(&chunk[..i]);
            chunk = &chunk[i + 1..];
        }
        self.partial.extend_from_slice(chunk);
    }

    /// The unterminated last line, if the stream ended without a newline.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }
}

/// What one SSE line means for a completion stream.
#[derive(Debug, PartialEq)]
pub enum Event<'a> {
    /// A chunk with at least one choice: one token event (its text may be empty). `usage`
    /// is set when the same chunk carries the usage count (llama.cpp).
    Token {
        text: Cow<'a, str>,
        usage: Option<u64>,
    },
    /// A chunk without choices that carries `usage.completion_tokens`.
    Usage(u64),
    /// An error object sent inside the stream.
    Error(String),
    /// `data: [DONE]`.
    Done,
    /// Blank lines, comments, other SSE fields, chunks with nothing we use.
    Ignore,
    /// A `data:` line that is not valid JSON.
    Malformed(String),
}

/// Classify one line of a completion stream (leading/trailing whitespace ignored).
///
/// The payload is read the way the reference reads it (`json.loads`, then
/// `data.get("choices")`, `choices[0].get("text")` or `["delta"].get("content")`,
/// `data.get("usage")`, `usage.get("completion_tokens")`), by [`scan`]: one validating pass
/// over the bytes that keeps only those fields. Duplicate keys resolve as in Python (the
/// last one wins).
pub fn parse_line(line: &[u8]) -> Event<'_> {
    let line = line.trim_ascii();
    if line.is_empty() || line[0] == b':' {
        return Event::Ignore;
    }
    let Some(data) = line.strip_prefix(b"data:") else {
        return Event::Ignore;
    };
    let data = data.trim_ascii_start();
    if data == b"[DONE]" {
        return Event::Done;
    }
    match scan::chunk(data) {
        Ok(c) => {
            if c.choices {
                return Event::Token {
                    text: c.text.unwrap_or(Cow::Borrowed("")),
                    usage: c.usage,
                };
            }
            if let Some(e) = c.error {
                return Event::Error(e);
            }
            match c.usage {
                Some(u) => Event::Usage(u),
                None => Event::Ignore,
            }
        }
        Err(e) => Event::Malformed(format!(
            "{e}: {}",
            String::from_utf8_lossy(&data[..data.len().min(200)])
        )),
    }
}

/// `usage.prompt_tokens` of a `data:` line: read once per request (from the line that
/// carried the completion count), never per token.
pub fn prompt_tokens(line: &[u8]) -> Option<u64> {
    let data = line.trim_ascii().strip_prefix(b"data:")?.trim_ascii_start();
    #[derive(serde::Deserialize)]
    struct Usage {
        prompt_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Chunk {
        usage: Option<Usage>,
    }
    serde_json::from_slice::<Chunk>(data)
        .ok()?
        .usage?
        .prompt_tokens
}

/// A validating single-pass JSON reader for stream chunks.
///
/// Per token the client needs three facts from a ~200-byte JSON object; building a tree (or
/// running a derived deserializer over every field of it) per event is most of the client's
/// CPU at high concurrency. This reader walks the bytes once, checks them against RFC 8259
/// (so a malformed chunk still fails the request, as `json.loads` would make it fail), skips
/// every value it does not need without allocating, and borrows the text it keeps unless
/// the text has escapes.
mod scan {
    use std::borrow::Cow;

    /// The fields of a chunk the client uses.
    #[derive(Debug, Default)]
    pub struct Chunk<'a> {
        /// `choices` is a non-empty list.
        pub choices: bool,
        /// The first choice's `text`, else its `delta.content` (a string; anything else is
        /// no text).
        pub text: Option<Cow<'a, str>>,
        /// `usage.completion_tokens`, when it is a non-negative integer.
        pub usage: Option<u64>,
        /// `error.message`, or `error` itself when it is a string.
        pub error: Option<String>,
    }

    /// Deeper nesting than this is refused rather than recursed into.
    const MAX_DEPTH: u32 = 128;

    /// Read one chunk: a JSON object, nothing after it but whitespace.
    pub fn chunk(data: &[u8]) -> Result<Chunk<'_>, String> {
        // One pass for the whole payload (Python decodes the whole chunk too), so strings
        // are sliced without checking each; control characters are looked for per string
        // only when the payload has any.
        let s = std::str::from_utf8(data)
            .map_err(|e| format!("invalid UTF-8 at byte {}", e.valid_up_to()))?;
        let mut r = Reader {
            s,
            b: data,
            i: 0,
            controls: data.iter().any(|&c| c < 0x20),
        };
        let c = r.top()?;
        r.ws();
        if r.i != r.b.len() {
            return Err(r.err("trailing characters"));
        }
        Ok(c)
    }

    struct Reader<'a> {
        /// The payload, known to be UTF-8.
        s: &'a str,
        /// The same bytes.
        b: &'a [u8],
        /// Position of the next byte.
        i: usize,
        /// The payload has bytes below 0x20 (which strings must not contain).
        controls: bool,
    }

    impl<'a> Reader<'a> {
        fn err(&self, what: &str) -> String {
            format!("invalid JSON at byte {}: {what}", self.i)
        }

        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        fn expect(&mut self, c: u8) -> Result<(), String> {
            if self.peek() == Some(c) {
                self.i += 1;
                Ok(())
            } else {
                Err(self.err(&format!("expected `{}`", c as char)))
            }
        }

        /// Visit an object's members: `f` gets each key and must consume its value.
        fn object(
            &mut self,
            mut f: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), String>,
        ) -> Result<(), String> {
            self.expect(b'{')?;
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(());
            }
            loop {
                if self.peek() != Some(b'"') {
                    return Err(self.err("expected a string key"));
                }
                let key = self.string()?;
                self.expect(b':')?;
                f(self, key)?;
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b'}') => {
                        self.i += 1;
                        return Ok(());
                    }
                    _ => return Err(self.err("expected `,` or `}`")),
                }
            }
        }

        /// Visit an array's elements: `f` gets each index and must consume the element.
        fn array(
            &mut self,
            mut f: impl FnMut(&mut Self, usize) -> Result<(), String>,
        ) -> Result<usize, String> {
            self.expect(b'[')?;
            if self.peek() == Some(b']') {
                self.i += 1;
                return Ok(0);
            }
            let mut n = 0;
            loop {
                f(self, n)?;
                n += 1;
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(b']') => {
                        self.i += 1;
                        return Ok(n);
                    }
                    _ => return Err(self.err("expected `,` or `]`")),
                }
            }
        }

        fn top(&mut self) -> Result<Chunk<'a>, String> {
            if self.peek() != Some(b'{') {
                return Err(self.err("a chunk must be a JSON object"));
            }
            let mut c = Chunk::default();
            self.object(|r, key| {
                match &*key {
                    "choices" => {
                        let (any, text) = r.choices()?;
                        c.choices = any;
                        c.text = text;
                    }
                    "usage" => c.usage = r.usage()?,
                    "error" => c.error = r.error()?,
                    _ => r.skip(0)?,
                }
                Ok(())
            })?;
            Ok(c)
        }

        /// `choices`: whether it is a non-empty list, and its first element's text.
        fn choices(&mut self) -> Result<(bool, Option<Cow<'a, str>>), String> {
            match self.peek() {
                Some(b'[') => {}
                Some(b'n') => {
                    self.literal(b"null")?;
                    return Ok((false, None));
                }
                _ => return Err(self.err("`choices` must be a list")),
            }
            let mut text = None;
            let n = self.array(|r, k| {
                if k == 0 && r.peek() == Some(b'{') {
                    text = r.first_choice()?;
                    Ok(())
                } else {
                    r.skip(1)
                }
            })?;
            Ok((n > 0, text))
        }

        fn first_choice(&mut self) -> Result<Option<Cow<'a, str>>, String> {
            let (mut text, mut content) = (None, None);
            self.object(|r, key| {
                match &*key {
                    "text" => text = r.string_or_skip(2)?,
                    "delta" if r.peek() == Some(b'{') => {
                        content = None;
                        r.object(|r, key| {
                            if key == "content" {
                                content = r.string_or_skip(3)?;
                            } else {
                                r.skip(3)?;
                            }
                            Ok(())
                        })?;
                    }
                    _ => r.skip(2)?,
                }
                Ok(())
            })?;
            Ok(text.or(content))
        }

        fn usage(&mut self) -> Result<Option<u64>, String> {
            if self.peek() != Some(b'{') {
                self.skip(1)?;
                return Ok(None);
            }
            let mut tokens = None;
            self.object(|r, key| {
                if key == "completion_tokens" && matches!(r.peek(), Some(b'0'..=b'9')) {
                    let start = r.i;
                    r.number()?;
                    tokens = std::str::from_utf8(&r.b[start..r.i])
                        .ok()
                        .and_then(|s| s.parse().ok());
                } else {
                    if key == "completion_tokens" {
                        tokens = None;
                    }
                    r.skip(2)?;
                }
                Ok(())
            })?;
            Ok(tokens)
        }

        fn error(&mut self) -> Result<Option<String>, String> {
            match self.peek() {
                Some(b'"') => Ok(Some(self.string()?.into_owned())),
                Some(b'{') => {
                    let mut message = None;
                    self.object(|r, key| {
                        if key == "message" {
                            message = r.string_or_skip(2)?.map(Cow::into_owned);
                        } else {
                            r.skip(2)?;
                        }
                        Ok(())
                    })?;
                    Ok(Some(message.unwrap_or_else(|| "error".into())))
                }
                Some(b'n') => {
                    self.literal(b"null")?;
                    Ok(None)
                }
                _ => {
                    self.skip(1)?;
                    Ok(Some("error".into()))
                }
            }
        }

        fn string_or_skip(&mut self, depth: u32) -> Result<Option<Cow<'a, str>>, String> {
            if self.peek() == Some(b'"') {
                self.string().map(Some)
            } else {
                self.skip(depth).map(|()| None)
            }
        }

        /// Skip (and check) one value of any kind.
        fn skip(&mut self, depth: u32) -> Result<(), String> {
            if depth > MAX_DEPTH {
                return Err(self.err("nested too deeply"));
            }
            match self.peek() {
                Some(b'"') => self.string().map(drop),
                Some(b'{') => self.object(|r, _| r.skip(depth + 1)),
                Some(b'[') => self.array(|r, _| r.skip(depth + 1)).map(drop),
                Some(b't') => self.literal(b"true"),
                Some(b'f') => self.literal(b"false"),
                Some(b'n') => self.literal(b"null"),
                Some(b'-' | b'0'..=b'9') => self.number(),
                Some(_) => Err(self.err("expected a value")),
                None => Err(self.err("unexpected end")),
            }
        }

        fn literal(&mut self, word: &[u8]) -> Result<(), String> {
            if self.b[self.i..].starts_with(word) {
                self.i += word.len();
                Ok(())
            } else {
                Err(self.err("invalid literal"))
            }
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        fn number(&mut self) -> Result<(), String> {
            let digits = |r: &mut Self| {
                let s = r.i;
                while let Some(b'0'..=b'9') = r.b.get(r.i) {
                    r.i += 1;
                }
                r.i - s
            };
            if self.b.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            match self.b.get(self.i) {
                Some(b'0') => self.i += 1,
                Some(b'1'..=b'9') => {
                    digits(self);
                }
                _ => return Err(self.err("invalid number")),
            }
            if self.b.get(self.i) == Some(&b'.') {
                self.i += 1;
                if digits(self) == 0 {
                    return Err(self.err("invalid number"));
                }
            }
            if let Some(b'e' | b'E') = self.b.get(self.i) {
                self.i += 1;
                if let Some(b'+' | b'-') = self.b.get(self.i) {
                    self.i += 1;
                }
                if digits(self) == 0 {
                    return Err(self.err("invalid number"));
                }
            }
            Ok(())
        }

        /// A string at `self.i` (the opening quote), borrowed unless it has escapes.
        fn string(&mut self) -> Result<Cow<'a, str>, String> {
            let b = self.b;
            let start = self.i + 1;
            let Some(n) = memchr::memchr2(b'"', b'\\', &b[start..]) else {
                return Err(self.err("unterminated string"));
            };
            let mut end = start + n;
            if b[end] == b'"' {
                self.i = end + 1;
                return Ok(Cow::Borrowed(self.text(start, end)?));
            }
            let mut out = String::with_capacity(end - start + 16);
            out.push_str(self.text(start, end)?);
            loop {
                // At a backslash.
                self.i = end;
                let esc = *b
                    .get(end + 1)
                    .ok_or_else(|| self.err("unterminated string"))?;
                end += 2;
                match esc {
                    b'"' => out.push('"'),
                    b'\\' => out.push('\\'),
                    b'/' => out.push('/'),
                    b'b' => out.push('\u{8}'),
                    b'f' => out.push('\u{c}'),
                    b'n' => out.push('\n'),
                    b'r' => out.push('\r'),
                    b't' => out.push('\t'),
                    b'u' => {
                        let hi = self.hex4(end)?;
                        end += 4;
                        let c = if (0xD800..0xDC00).contains(&hi)
                            && b.get(end..end + 2) == Some(b"\\u")
                        {
                            let lo = self.hex4(end + 2)?;
                            if (0xDC00..0xE000).contains(&lo) {
                                end += 6;
                                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
                            } else {
                                None
                            }
                        } else {
                            char::from_u32(hi)
                        };
                        // A lone surrogate (Python keeps it; UTF-8 cannot) becomes U+FFFD.
                        out.push(c.unwrap_or('\u{FFFD}'));
                    }
                    _ => return Err(self.err("invalid escape")),
                }
                let Some(n) = memchr::memchr2(b'"', b'\\', &b[end..]) else {
                    return Err(self.err("unterminated string"));
                };
                out.push_str(self.text(end, end + n)?);
                end += n;
                if b[end] == b'"' {
                    self.i = end + 1;
                    return Ok(Cow::Owned(out));
                }
            }
        }

        fn hex4(&self, at: usize) -> Result<u32, String> {
            let h = self
                .b
                .get(at..at + 4)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| self.err("invalid \\u escape"))?;
            u32::from_str_radix(h, 16).map_err(|_| self.err("invalid \\u escape"))
        }

        /// The raw string bytes `start..end` (bounded by ASCII quotes or backslashes, so on
        /// character boundaries), refused if they hold a control character.
        fn text(&self, start: usize, end: usize) -> Result<&'a str, String> {
            if self.controls && self.b[start..end].iter().any(|&c| c < 0x20) {
                return Err(self.err("control character in string"));
            }
            Ok(&self.s[start..end])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(t: &str) -> Event<'_> {
        Event::Token {
            text: Cow::Borrowed(t),
            usage: None,
        }
    }

    #[test]
    fn vllm_completion_stream() {
        let l = br#"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#;
        assert_eq!(parse_line(l), tok(" the"));
        let u = br#"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7}}"#;
        assert_eq!(parse_line(u), Event::Usage(7));
        assert_eq!(parse_line(b"data: [DONE]"), Event::Done);
        assert_eq!(parse_line(b"  data: [DONE]\r"), Event::Done);
    }

    #[test]
    fn llama_cpp_usage_on_last_choice_and_chat_deltas() {
        let l = br#"data: {"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"created":1,"model":"m","object":"text_completion","usage":{"completion_tokens":16,"prompt_tokens":3,"total_tokens":19},"id":"x"}"#;
        assert_eq!(
            parse_line(l),
            Event::Token {
                text: Cow::Borrowed(""),
                usage: Some(16)
            }
        );
        let c = br#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"there\""}}]}"#;
        assert_eq!(parse_line(c), tok("Hi \"there\""));
        let role = br#"data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}"#;
        assert_eq!(parse_line(role), tok(""));
    }

    #[test]
    fn other_lines() {
        assert_eq!(parse_line(b""), Event::Ignore);
        assert_eq!(parse_line(b": ping"), Event::Ignore);
        assert_eq!(parse_line(b"event: message"), Event::Ignore);
        assert_eq!(
            parse_line(br#"data: {"error":{"message":"boom","code":500}}"#),
            Event::Error("boom".into())
        );
        assert_eq!(
            parse_line(br#"data: {"error":"bad"}"#),
            Event::Error("bad".into())
        );
        assert!(matches!(
            parse_line(b"data: {\"choices\": [{"),
            Event::Malformed(_)
        ));
    }

    /// (choices non-empty, first text, completion_tokens, error).
    type Fields = (bool, Option<String>, Option<u64>, Option<String>);

    /// What the reference makes of a payload (`json.loads` and the `.get` chain), computed
    /// on a full JSON tree. `None`: the payload fails the request.
    fn oracle(data: &[u8]) -> Option<Fields> {
        use serde_json::Value;
        let v: Value = serde_json::from_slice(data).ok()?;
        let o = v.as_object()?;
        let (any, text) = match o.get("choices") {
            None | Some(Value::Null) => (false, None),
            Some(Value::Array(a)) => {
                let first = a.first().and_then(Value::as_object);
                let text = first.and_then(|c| match c.get("text") {
                    Some(Value::String(s)) => Some(s.clone()),
                    _ => c
                        .get("delta")
                        .and_then(Value::as_object)
                        .and_then(|d| d.get("content"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                });
                (!a.is_empty(), text)
            }
            Some(_) => return None,
        };
        let usage = o
            .get("usage")
            .and_then(|u| u.get("completion_tokens"))
            .and_then(Value::as_u64);
        let error = match o.get("error") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(e)) => Some(
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("error")
                    .to_owned(),
            ),
            Some(_) => Some("error".into()),
        };
        Some((any, text, usage, error))
    }

    fn ours(data: &[u8]) -> Option<Fields> {
        let c = scan::chunk(data).ok()?;
        Some((c.choices, c.text.map(Cow::into_owned), c.usage, c.error))
    }

    const CORPUS: &[&str] = &[
        r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#,
        r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7}}"#,
        r#"{"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"created":1,"model":"m","object":"text_completion","usage":{"completion_tokens":16,"prompt_tokens":3,"total_tokens":19},"id":"x"}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi \"there\"\n\u00e9\ud83d\ude00 \/ \t"},"logprobs":{"content":[{"token":"x","logprob":-1.5e-3,"bytes":[72,105]}]}}]}"#,
        r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}},{"delta":{"content":"second"}}],"usage":{"completion_tokens":1.0}}"#,
        r#" { "error" : { "message" : "boom", "code" : 500, "param" : [true, false, null, -0.5E+2] } } "#,
        r#"{"error":"bad","choices":null,"usage":{}}"#,
        r#"{"choices":[{"text":"a","text":"b","delta":{"content":"c"}}],"choices":[{"text":"last"}],"usage":{"completion_tokens":3,"completion_tokens":4}}"#,
        r#"{"choices":[["nested"],{"text":"not first"}],"meta":{"a":{"b":{"c":[1,[2,[3]]]}}}}"#,
        r#"{"choices":[{"text":12}],"error":{"message":7}}"#,
        r#"{"choices":[{"index":0,"text":"ünï😀","finish_reason":null}],"usage":{"completion_tokens":18446744073709551615}}"#,
    ];

    /// The scanner agrees with a full JSON parse plus the reference's lookups on a corpus of
    /// real and awkward chunks, on every prefix of them, and on every single-byte edit.
    #[test]
    fn scanner_agrees_with_a_full_parse() {
        let mut cases = 0;
        let mut check = |d: &[u8]| {
            let want = oracle(d);
            let got = ours(d);
            if want.is_none() && got.is_some() {
                // serde_json refuses lone surrogates (also a high one followed by no `\u`)
                // and numbers beyond f64, which Python's json.loads (and we) accept.
                let e = serde_json::from_slice::<serde_json::Value>(d).unwrap_err();
                assert!(
                    ["surrogate", "end of hex escape", "out of range"]
                        .iter()
                        .any(|m| e.to_string().contains(m)),
                    "accepted invalid JSON ({e}) {:?}",
                    String::from_utf8_lossy(d)
                );
                return;
            }
            assert_eq!(got, want, "payload {:?}", String::from_utf8_lossy(d));
            cases += 1;
        };
        for c in CORPUS {
            let b = c.as_bytes();
            assert!(oracle(b).is_some(), "corpus entry must be valid: {c}");
            check(b);
            for n in 0..b.len() {
                check(&b[..n]);
                let mut del = b.to_vec();
                del.remove(n);
                check(&del);
                for x in [
                    b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'0', b'e', b'-', b'.', 1,
                    0xff, b' ', b'u', b'n',
                ] {
                    let mut m = b.to_vec();
                    m[n] = x;
                    check(&m);
                }
            }
        }
        assert!(cases > 20_000, "{cases}");
    }

    #[test]
    fn scanner_reads_the_fields_the_reference_reads() {
        let l = br#"data: {"choices":[{"text":"a","text":"b"}],"choices":[{"text":"last"}],"usage":{"completion_tokens":4}}"#;
        assert_eq!(
            parse_line(l),
            Event::Token {
                text: Cow::Borrowed("last"),
                usage: Some(4)
            }
        );
        let esc = br#"data: {"choices":[{"delta":{"content":"\u00e9\ud83d\ude00\n"}}]}"#;
        assert_eq!(parse_line(esc), tok("é😀\n"));
        // A lone surrogate: Python keeps it; UTF-8 cannot, so it reads as U+FFFD.
        let lone = br#"data: {"choices":[{"text":"a\ud800b"}]}"#;
        assert_eq!(parse_line(lone), tok("a\u{FFFD}b"));
        assert!(matches!(parse_line(b"data: [1,2]"), Event::Malformed(_)));
        assert!(matches!(
            parse_line(br#"data: {"choices":"x"}"#),
            Event::Malformed(_)
        ));
        let deep = format!("data: {{\"x\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(parse_line(deep.as_bytes()), Event::Malformed(_)));
    }

    #[test]
    fn splitter_joins_lines_across_chunks() {
        let mut s = LineSplitter::default();
        let mut lines = vec![];
        for part in [&b"data: a"[..], b"bc\n\nda", b"ta: x\ndata: y", b"\n"] {
            s.feed(part, |l| lines.push(String::from_utf8(l.to_vec()).unwrap()));
        }
        assert_eq!(lines, ["data: abc", "", "data: x", "data: y"]);
        assert!(s.finish().is_none());
        s.feed(b"tail", |_| panic!("no complete line"));
        assert_eq!(s.finish().unwrap(), b"tail");
    }
}
