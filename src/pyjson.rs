//! JSON written the way Python's `json.dumps` writes it.
//!
//! Users diff our output against the reference tools' (the sweep generator prints
//! `json.dumps(rows)`, benchmark_serving.py writes `json.dump(result)`); matching the
//! separators and ASCII escaping makes those files byte-comparable.

use serde::Serialize;
use std::io::Write;

/// Serialise exactly as Python's `json.dumps(value)` does with its defaults (`", "` and
/// `": "` separators, non-ASCII escaped as lowercase `\uXXXX`), so our stdout is
/// byte-identical to the reference generator's `print(json.dumps(rows))`.
pub fn to_python_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::with_capacity(4096);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter { compact: false });
    value.serialize(&mut ser).expect("rows serialise");
    String::from_utf8(out).expect("JSON output is ASCII")
}

/// Serialise exactly as Python's `json.dump(value, f, indent=2)` does (`","` line ends,
/// `": "`, two-space indent, empty containers as `{}`/`[]`, ASCII escapes, `repr` floats),
/// so an aggregate we write is byte-identical to the one InferenceX's scripts write.
pub fn to_python_json_indent2<T: Serialize>(value: &T) -> String {
    let mut out = Vec::with_capacity(4096);
    let fmt = PyPretty(serde_json::ser::PrettyFormatter::with_indent(b"  "));
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser).expect("value serialises");
    String::from_utf8(out).expect("JSON output is ASCII")
}

/// `PrettyFormatter` for layout, Python for floats and string escapes.
struct PyPretty<'a>(serde_json::ser::PrettyFormatter<'a>);

impl serde_json::ser::Formatter for PyPretty<'_> {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.0.end_object_value(w)
    }
    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, v: f64) -> std::io::Result<()> {
        w.write_all(py_float_repr(v).as_bytes())
    }
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        PyFormatter { compact: false }.write_string_fragment(w, fragment)
    }
}

/// Python's `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`:
/// the canonical text InferenceX hashes into a recipe fingerprint.
pub fn to_canonical_json(value: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            v => v.clone(),
        }
    }
    let mut out = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter { compact: true });
    sorted(value).serialize(&mut ser).expect("values serialise");
    String::from_utf8(out).expect("JSON output is ASCII")
}

/// `json.dumps` formatting: default (`", "`, `": "`) or compact (`","`, `":"`) separators,
/// ASCII-only strings.
struct PyFormatter {
    /// Compact separators.
    compact: bool,
}

impl PyFormatter {
    /// Python's item separator before every element but the first.
    fn separator<W: ?Sized + Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        match (first, self.compact) {
            (true, _) => Ok(()),
            (false, true) => w.write_all(b","),
            (false, false) => w.write_all(b", "),
        }
    }
}

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.separator(w, first)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.separator(w, first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(if self.compact { b":" } else { b": " })
    }

    fn write_f64<W: ?Sized + Write>(&mut self, w: &mut W, v: f64) -> std::io::Result<()> {
        w.write_all(py_float_repr(v).as_bytes())
    }

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        for ch in fragment.chars() {
            if ch.is_ascii() {
                w.write_all(&[ch as u8])?;
            } else {
                let mut units = [0u16; 2];
                for u in ch.encode_utf16(&mut units) {
                    write!(w, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation for exponents in
/// `-4..16` (integral values keep `.0`), else `d.ddde±XX`; `NaN`/`Infinity` as `json` writes.
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("exponent is an integer");
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
    out
}

/// A JSON text that Python's `json.loads` would reject (or that we cannot represent).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} column {col}: {message}")]
pub struct LoadError {
    /// 1-based line of the offending character.
    pub line: usize,
    /// 1-based column (in bytes).
    pub col: usize,
    /// What was wrong.
    pub message: String,
}

/// Parse JSON as Python's `json.loads` does, into a `serde_json::Value`: floats through a
/// correctly rounded decimal conversion (serde_json's default parser may be one ulp off on
/// long mantissas, which would break last-digit equality with the reference), integers as
/// integers, `NaN`/`Infinity`/`-Infinity` accepted (and, having no JSON value, read as
/// `null`), later duplicate keys replacing earlier ones in place.
pub fn loads(text: &str) -> Result<serde_json::Value, LoadError> {
    let mut p = Loader {
        s: text.as_bytes(),
        i: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("extra data"));
    }
    Ok(v)
}

struct Loader<'a> {
    s: &'a [u8],
    i: usize,
}

impl Loader<'_> {
    fn err(&self, message: &str) -> LoadError {
        let before = &self.s[..self.i.min(self.s.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = self.i
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        LoadError {
            line,
            col,
            message: message.to_string(),
        }
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<serde_json::Value, LoadError> {
        use serde_json::Value;
        if depth > 512 {
            return Err(self.err("nesting too deep"));
        }
        let Some(&c) = self.s.get(self.i) else {
            return Err(self.err("expecting value"));
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut m = serde_json::Map::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Value::Object(m));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return Err(self.err("expecting property name enclosed in double quotes"));
                    }
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return Err(self.err("expecting ':' delimiter"));
                    }
                    self.ws();
                    let v = self.value(depth + 1)?;
                    m.insert(k, v);
                    self.ws();
                    if self.eat("}") {
                        return Ok(Value::Object(m));
                    }
                    if !self.eat(",") {
                        return Err(self.err("expecting ',' delimiter"));
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Value::Array(a));
                }
                loop {
                    self.ws();
                    a.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Value::Array(a));
                    }
                    if !self.eat(",") {
                        return Err(self.err("expecting ',' delimiter"));
                    }
                }
            }
            b'"' => Ok(Value::String(self.string()?)),
            _ if self.eat("null") => Ok(Value::Null),
            _ if self.eat("true") => Ok(Value::Bool(true)),
            _ if self.eat("false") => Ok(Value::Bool(false)),
            _ if self.eat("NaN") || self.eat("Infinity") || self.eat("-Infinity") => {
                Ok(Value::Null)
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.err("expecting value")),
        }
    }

    fn number(&mut self) -> Result<serde_json::Value, LoadError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while p.i < p.s.len() && p.s[p.i].is_ascii_digit() {
                p.i += 1;
            }
            p.i - s
        };
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        if digits(self) == 0 {
            return Err(self.err("expecting value"));
        }
        let mut float = false;
        if self.s.get(self.i) == Some(&b'.')
            && self.s.get(self.i + 1).is_some_and(u8::is_ascii_digit)
        {
            self.i += 1;
            digits(self);
            float = true;
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                self.i = save;
            } else {
                float = true;
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII number");
        if !float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(i.into());
            }
            if let Ok(u) = text.parse::<u64>() {
                return Ok(u.into());
            }
        }
        let x: f64 = text.parse().map_err(|_| self.err("bad number"))?;
        Ok(serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into))
    }

    fn string(&mut self) -> Result<String, LoadError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len()
                && !matches!(self.s[self.i], b'"' | b'\\')
                && self.s[self.i] >= 0x20
            {
                self.i += 1;
            }
            out.push_str(
                std::str::from_utf8(&self.s[start..self.i])
                    .map_err(|_| self.err("invalid UTF-8"))?,
            );
            match self.s.get(self.i) {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let c = if (0xd800..0xdc00).contains(&hi)
                                && self.s[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                let lo = self.hex4()?;
                                if (0xdc00..0xe000).contains(&lo) {
                                    char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                                } else {
                                    self.i = save;
                                    None
                                }
                            } else {
                                char::from_u32(hi)
                            };
                            // A lone surrogate has no Rust `char`: U+FFFD stands in.
                            out.push(c.unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(self.err("invalid \\escape")),
                    }
                }
                _ => return Err(self.err("unterminated string or control character in string")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, LoadError> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .ok_or_else(|| self.err("invalid \\uXXXX escape"))?;
        let h = std::str::from_utf8(h).map_err(|_| self.err("invalid \\uXXXX escape"))?;
        let v = u32::from_str_radix(h, 16).map_err(|_| self.err("invalid \\uXXXX escape"))?;
        self.i += 4;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_like_python() {
        for (v, want) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (123.456, "123.456"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (9999999999999998.0, "9999999999999998.0"),
            (-2.5e-7, "-2.5e-07"),
            (2.6484636363636365, "2.6484636363636365"),
            (f64::INFINITY, "Infinity"),
            (-0.0, "-0.0"),
        ] {
            assert_eq!(py_float_repr(v), want, "{v:e}");
        }
    }

    #[test]
    fn loads_like_python() {
        // 17-digit mantissas: CPython's float() of each literal.
        let v = loads(r#"{"a": [1.0000000000000002, 123.45678901234567, -0.1e-3, 5, -7, 18446744073709551615], "b": "x\u00e9\ud83d\ude00\n", "c": NaN, "a": 2}"#).unwrap();
        assert_eq!(v["a"], 2);
        assert_eq!(v["b"], "x\u{e9}\u{1f600}\n");
        assert!(v["c"].is_null());
        let w = loads("[1.0000000000000002, 123.45678901234567, -0.1e-3, 5, -7, 18446744073709551615, 2.2250738585072014e-308]").unwrap();
        assert_eq!(w[0].as_f64(), Some(1.0000000000000002));
        assert_eq!(w[1].as_f64(), Some(123.45678901234567));
        assert_eq!(w[2].as_f64(), Some(-0.0001));
        assert!(w[3].is_i64() && w[4] == -7 && w[5].is_u64());
        assert!(loads("[1,]").is_err());
        assert_eq!(loads("{\"a\": 1}\n x").unwrap_err().line, 2);
    }

    #[test]
    fn python_json_dump_indent2_format() {
        let v = serde_json::json!({"a": [1, 2.0], "b": {}, "c": [], "d": {"e": null, "f": "é"}});
        // python3 -c 'import json; print(json.dumps({...}, indent=2))'
        assert_eq!(
            to_python_json_indent2(&v),
            "{\n  \"a\": [\n    1,\n    2.0\n  ],\n  \"b\": {},\n  \"c\": [],\n  \"d\": {\n    \"e\": null,\n    \"f\": \"\\u00e9\"\n  }\n}"
        );
    }

    #[test]
    fn python_json_dumps_format() {
        let v = serde_json::json!({"a": [1, 2], "b": {"c": "é😀", "d": false}, "e": []});
        assert_eq!(
            to_python_json(&v),
            r#"{"a": [1, 2], "b": {"c": "\u00e9\ud83d\ude00", "d": false}, "e": []}"#
        );
    }
}
