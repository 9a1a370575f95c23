//! The OurChat dialects: [`v1`] (natter's native dialect, `GET /ws`) and [`v0`] (the older
//! draft, `GET /ws/v0`). Both are JSON text frames over [`crate::ws::Conn`]; what they share
//! here is the writer of request frames.

pub mod v0;
pub mod v1;

use std::fmt::Write as _;

/// A request frame being written: a flat JSON object, keys in the order written.
///
/// Writing by hand keeps a request as cheap as a `format!`; values are escaped as JSON
/// strings where they are strings.
pub(crate) struct Obj {
    out: String,
}

impl Obj {
    /// `{"code":N`.
    pub(crate) fn code(code: i64) -> Self {
        let mut out = String::with_capacity(64);
        let _ = write!(out, "{{\"code\":{code}");
        Self { out }
    }

    /// An object with no code (a nested `data` or `sender`).
    pub(crate) fn empty() -> Self {
        Self {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        push_str(&mut self.out, key);
        self.out.push(':');
    }

    pub(crate) fn int(mut self, key: &str, value: u64) -> Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    pub(crate) fn int_opt(self, key: &str, value: Option<u64>) -> Self {
        match value {
            Some(v) => self.int(key, v),
            None => self,
        }
    }

    pub(crate) fn bool(mut self, key: &str, value: bool) -> Self {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
        self
    }

    pub(crate) fn str(mut self, key: &str, value: &str) -> Self {
        self.key(key);
        push_str(&mut self.out, value);
        self
    }

    pub(crate) fn str_opt(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    /// A value that is already JSON (a nested object or a list).
    pub(crate) fn raw(mut self, key: &str, json: &str) -> Self {
        self.key(key);
        self.out.push_str(json);
        self
    }

    pub(crate) fn done(mut self) -> String {
        self.out.push('}');
        self.out
    }
}

/// A JSON list of integers.
pub(crate) fn int_list(values: &[u64]) -> String {
    let mut out = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{v}");
    }
    out.push(']');
    out
}

/// A JSON list of strings.
pub(crate) fn str_list(values: &[&str]) -> String {
    let mut out = String::from("[");
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, v);
    }
    out.push(']');
    out
}

/// `s` as a JSON string.
fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_json() {
        let sender = Obj::empty().int("private_id", 10002).done();
        let frame = Obj::code(0)
            .raw("sender", &sender)
            .str("msg", "h\u{e9}llo \"w\"\n\\ \u{1}")
            .bool("ok", true)
            .raw("list", &str_list(&["a", "b\""]))
            .raw("ids", &int_list(&[1, 2]))
            .int_opt("absent", None)
            .done();
        let v: serde_json::Value = serde_json::from_str(&frame).expect("JSON");
        assert_eq!(
            v,
            serde_json::json!({"code": 0, "sender": {"private_id": 10002},
                "msg": "h\u{e9}llo \"w\"\n\\ \u{1}", "ok": true, "list": ["a", "b\""], "ids": [1, 2]})
        );
        assert_eq!(Obj::code(19).done(), r#"{"code":19}"#);
        assert_eq!(Obj::empty().done(), "{}");
    }
}
