//! A writer for the few JSON objects sent once per message (a delivery, an ack, a stored
//! message's parts), with their keys in literal runs.
//!
//! Going through `serde_json`'s serializer escapes every key byte by byte; on the message path
//! that was ~6 % of the server's instructions. Here the text between values (`,"cid":`) is
//! copied in one piece, integers go through `itoa`, and a string value is copied as it is
//! unless it holds a byte JSON requires escaped (then `serde_json` escapes it). Each encoder's
//! output is tested to be byte for byte what `serde_json` writes for the same fields in the
//! same order.

use serde_json::Value;

/// JSON text being written: literal runs (keys with their quotes, colon and comma, and
/// constant values) are copied whole, integers go through `itoa`, strings are escaped only
/// when they need it.
pub struct Writer {
    out: String,
}

impl Writer {
    /// Start, with room for `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
        }
    }

    /// JSON text written as it is, such as `{"code":0,"time":`.
    pub fn lit(&mut self, text: &'static str) -> &mut Self {
        self.out.push_str(text);
        self
    }

    /// A JSON value the caller vouches for (text the server itself wrote), copied as it is.
    pub fn raw(&mut self, json: &str) -> &mut Self {
        self.out.push_str(json);
        self
    }

    /// An integer.
    pub fn int(&mut self, value: impl itoa::Integer) -> &mut Self {
        self.out.push_str(itoa::Buffer::new().format(value));
        self
    }

    /// A string value, quoted and escaped.
    pub fn str(&mut self, value: &str) -> &mut Self {
        push_str_value(&mut self.out, value);
        self
    }

    /// Any JSON value (an echoed `request_id`).
    pub fn value(&mut self, value: &Value) -> &mut Self {
        // Writing a `Value` into a `String` cannot fail.
        if let Ok(text) = serde_json::to_string(value) {
            self.out.push_str(&text);
        }
        self
    }

    /// The text written.
    pub fn finish(&mut self) -> String {
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
            let got = Writer::new(8)
                .lit(r#"{"a":"#)
                .int(1u64)
                .lit(r#","b":"#)
                .int(-2i64)
                .lit(r#","c":"#)
                .str(text)
                .lit(r#","d":{"e":"#)
                .int(3u8)
                .lit(r#"},"h":"#)
                .value(&json!({"x": [1, "y"]}))
                .lit("}")
                .finish();
            let expected = json!({"a": 1, "b": -2, "c": text, "d": {"e": 3}, "h": {"x": [1, "y"]}})
                .to_string();
            assert_eq!(got, expected, "{text:?}");
        }
    }
}
