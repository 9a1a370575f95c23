//! A writer for the few flat JSON objects sent once per message (a delivery, an ack, a stored
//! message's parts), with their keys as literals.
//!
//! Going through `serde_json`'s serializer escapes every key byte by byte; on the message path
//! that was ~6 % of the server's instructions. Here keys are copied, integers go through
//! `itoa`, and a string value is copied as it is unless it holds a byte JSON requires escaped
//! (then `serde_json` escapes it). The output is byte for byte what `serde_json` writes for the
//! same fields in the same order (tested next to each encoder).

use serde_json::Value;

/// One JSON object being written; nested objects are opened and closed with `open`/`close`.
pub struct Object {
    out: String,
    /// No field has been written yet at the current depth.
    empty: bool,
}

impl Object {
    /// Start an object, with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self::after(String::with_capacity(capacity))
    }

    /// Start an object at the end of `out` (an array being written); `finish` hands `out` back.
    pub fn after(mut out: String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    fn key(&mut self, key: &'static str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out.push('"');
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    /// An integer field.
    pub fn int(&mut self, key: &'static str, value: impl itoa::Integer) -> &mut Self {
        self.key(key);
        self.out.push_str(itoa::Buffer::new().format(value));
        self
    }

    /// A string field.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        self.key(key);
        push_str_value(&mut self.out, value);
        self
    }

    /// A string field, left out when `None`.
    pub fn str_opt(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    /// Any JSON value (an echoed `request_id`), left out when `None`.
    pub fn value_opt(&mut self, key: &'static str, value: Option<&Value>) -> &mut Self {
        if let Some(v) = value {
            self.key(key);
            // Writing a `Value` into a `String` cannot fail.
            if let Ok(text) = serde_json::to_string(v) {
                self.out.push_str(&text);
            }
        }
        self
    }

    /// Open a nested object as the value of `key`.
    pub fn open(&mut self, key: &'static str) -> &mut Self {
        self.key(key);
        self.out.push('{');
        self.empty = true;
        self
    }

    /// Close the innermost nested object.
    pub fn close(&mut self) -> &mut Self {
        self.out.push('}');
        self.empty = false;
        self
    }

    /// Close the object and hand back its text.
    pub fn finish(&mut self) -> String {
        self.out.push('}');
        std::mem::take(&mut self.out)
    }
}

/// `value` as a JSON string literal, appended to `out`.
pub fn push_str_value(out: &mut String, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(value);
        out.push('"');
    } else if let Ok(escaped) = serde_json::to_string(value) {
        out.push_str(&escaped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_what_serde_json_writes() {
        for text in [
            "plain",
            "",
            "quote \" and \\ slash",
            "tab\tnew\nline \u{1}",
            "ünï €",
        ] {
            let mut o = Object::new(8);
            o.int("a", 1u64)
                .int("b", -2i64)
                .str("c", text)
                .open("d")
                .int("e", 3u8)
                .close()
                .str_opt("g", Some(text))
                .value_opt("h", Some(&json!({"x": [1, "y"]})))
                .value_opt("i", None);
            let expected =
                json!({"a": 1, "b": -2, "c": text, "d": {"e": 3}, "g": text, "h": {"x": [1, "y"]}})
                    .to_string();
            assert_eq!(o.finish(), expected, "{text:?}");
        }
    }

    #[test]
    fn an_empty_nested_object_and_object() {
        let mut o = Object::new(0);
        o.open("a").close();
        assert_eq!(o.finish(), r#"{"a":{}}"#);
        assert_eq!(Object::new(0).finish(), "{}");
    }
}
