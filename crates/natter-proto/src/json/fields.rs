//! A typed reader over a decoded JSON object, shared by the dialect decoders.
//!
//! Every getter names the field in its error, so a client learns exactly what was wrong.
//! Numbers written as strings are accepted where the seeds disagree on the type (ocid).

use crate::{ErrorCode, WireError};
use serde_json::{Map, Value};

/// Longest accepted request id, in characters, when it is a string.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// Read-only access to one JSON object's fields.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    /// A prefix for field names in errors (`data.` for v0).
    prefix: &'static str,
}

pub(crate) fn missing(prefix: &str, name: &str) -> WireError {
    WireError::new(
        ErrorCode::MissingField,
        format!("field `{prefix}{name}` is required"),
    )
}

pub(crate) fn invalid(prefix: &str, name: &str, expected: &str) -> WireError {
    WireError::new(
        ErrorCode::InvalidField,
        format!("field `{prefix}{name}` must be {expected}"),
    )
}

impl<'a> Fields<'a> {
    pub fn new(map: &'a Map<String, Value>, prefix: &'static str) -> Self {
        Self { map, prefix }
    }

    /// The prefix field names carry in errors (`data.` for v0).
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// A field as sent, `null` included (for fields where `null` means "clear").
    pub fn map_get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name)
    }

    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn str(&self, name: &str) -> Result<&'a str, WireError> {
        self.opt_str(name)?
            .ok_or_else(|| missing(self.prefix, name))
    }

    /// An optional string (absent or null is `None`).
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, WireError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(self.prefix, name, "a string")),
        }
    }

    /// A required non-negative integer; a string of digits is accepted too.
    pub fn id(&self, name: &str) -> Result<u64, WireError> {
        self.opt_id(name)?.ok_or_else(|| missing(self.prefix, name))
    }

    /// An optional non-negative integer; a string of digits is accepted too.
    pub fn opt_id(&self, name: &str) -> Result<Option<u64>, WireError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => value_as_id(v)
                .map(Some)
                .ok_or_else(|| invalid(self.prefix, name, "a non-negative integer")),
        }
    }

    /// A required integer (any sign).
    pub fn int(&self, name: &str) -> Result<i64, WireError> {
        match self.get(name) {
            None => Err(missing(self.prefix, name)),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| invalid(self.prefix, name, "an integer")),
        }
    }

    /// A required boolean.
    pub fn bool(&self, name: &str) -> Result<bool, WireError> {
        self.opt_bool(name)?
            .ok_or_else(|| missing(self.prefix, name))
    }

    /// An optional boolean.
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, WireError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(invalid(self.prefix, name, "true or false")),
        }
    }

    /// An optional flag: `true`/`false` or `1`/`0`.
    pub fn opt_flag(&self, name: &str) -> Result<Option<bool>, WireError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) if v.as_u64() == Some(1) => Ok(Some(true)),
            Some(v) if v.as_u64() == Some(0) => Ok(Some(false)),
            Some(_) => Err(invalid(self.prefix, name, "true, false, 1 or 0")),
        }
    }

    /// A required list of ids (each an integer or a string of digits), at most `max` long.
    pub fn id_list(&self, name: &str, max: usize) -> Result<Vec<u64>, WireError> {
        self.list(name, max, "a list of non-negative integers", value_as_id)
    }

    /// A required list of strings, at most `max` long.
    pub fn str_list(&self, name: &str, max: usize) -> Result<Vec<&'a str>, WireError> {
        self.list(name, max, "a list of strings", Value::as_str)
    }

    fn list<T>(
        &self,
        name: &str,
        max: usize,
        expected: &str,
        item: impl Fn(&'a Value) -> Option<T>,
    ) -> Result<Vec<T>, WireError> {
        let Some(v) = self.get(name) else {
            return Err(missing(self.prefix, name));
        };
        let list = v
            .as_array()
            .ok_or_else(|| invalid(self.prefix, name, expected))?;
        if list.len() > max {
            return Err(WireError::new(
                ErrorCode::InvalidField,
                format!("field `{}{name}` has more than {max} entries", self.prefix),
            ));
        }
        list.iter()
            .map(|v| item(v).ok_or_else(|| invalid(self.prefix, name, expected)))
            .collect()
    }

    /// An optional list of objects, at most `max` long.
    pub fn opt_objects(&self, name: &str, max: usize) -> Result<Vec<Fields<'a>>, WireError> {
        if self.get(name).is_none() {
            return Ok(Vec::new());
        }
        let prefix = self.prefix;
        self.list(name, max, "a list of objects", |v| {
            v.as_object().map(|m| Fields::new(m, prefix))
        })
    }

    /// A required nested object.
    pub fn object(&self, name: &str) -> Result<Fields<'a>, WireError> {
        match self.get(name) {
            None => Err(missing(self.prefix, name)),
            Some(Value::Object(map)) => Ok(Fields::new(map, self.prefix)),
            Some(_) => Err(invalid(self.prefix, name, "an object")),
        }
    }
}

/// An id from an integer or a string of ASCII digits.
pub fn value_as_id(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    }
}

/// The envelope's `code` and `request_id`, read before anything else so that even a request
/// that fails to decode is answered with the right code and id.
pub struct Head {
    pub code: Option<i64>,
    pub request_id: Option<Value>,
}

/// The head of a frame that is not decoded (one refused before decoding, such as over the rate
/// limit): its `code` and a valid `request_id`, the rest skipped without being built. Nothing
/// for a frame that is not a JSON object.
pub fn head_of(text: &str) -> Head {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default)]
        code: Option<Value>,
        #[serde(default)]
        request_id: Option<Value>,
    }
    match serde_json::from_str::<Raw>(text) {
        Ok(raw) => Head {
            code: raw.code.as_ref().and_then(Value::as_i64),
            request_id: raw
                .request_id
                .filter(|id| !id.is_null() && valid_request_id(id)),
        },
        Err(_) => Head {
            code: None,
            request_id: None,
        },
    }
}

/// Whether a (non-null) `request_id` is acceptable: an integer, or a string of at most
/// `MAX_REQUEST_ID_LEN` characters.
pub fn valid_request_id(id: &Value) -> bool {
    match id {
        Value::String(s) => s.chars().count() <= MAX_REQUEST_ID_LEN,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// Parse a frame into a JSON object and its head.
///
/// # Errors
/// `bad_json` when the text is not a JSON object; `invalid_field` for a bad `request_id`.
pub fn parse_object(text: &str) -> Result<(Map<String, Value>, Head), (Head, WireError)> {
    let empty = || Head {
        code: None,
        request_id: None,
    };
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            empty(),
            WireError::new(ErrorCode::BadJson, format!("frame is not valid JSON: {e}")),
        )
    })?;
    let Value::Object(map) = value else {
        return Err((
            empty(),
            WireError::new(ErrorCode::BadJson, "frame must be a JSON object"),
        ));
    };
    let code = map.get("code").and_then(Value::as_i64);
    let request_id = map.get("request_id").cloned().filter(|v| !v.is_null());
    let head = Head { code, request_id };
    if head
        .request_id
        .as_ref()
        .is_some_and(|id| !valid_request_id(id))
    {
        let head = Head {
            code: head.code,
            request_id: None,
        };
        return Err((
            head,
            WireError::new(
                ErrorCode::InvalidField,
                format!(
                    "field `request_id` must be an integer or a string of at most {MAX_REQUEST_ID_LEN} characters"
                ),
            ),
        ));
    }
    if !map.contains_key("code") {
        return Err((
            head,
            WireError::new(ErrorCode::MissingField, "field `code` is required"),
        ));
    }
    if code.is_none() {
        return Err((
            head,
            WireError::new(ErrorCode::InvalidField, "field `code` must be an integer"),
        ));
    }
    Ok((map, head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_head_of_an_undecoded_frame_is_its_code_and_valid_request_id() {
        let head = head_of(r#"{"msg": {"deep": [1, 2]}, "code": 0, "request_id": "r-1"}"#);
        assert_eq!(head.code, Some(0));
        assert_eq!(head.request_id, Some(json!("r-1")));
        let head = head_of(r#"{"code": 6, "request_id": {"not": "an id"}}"#);
        assert_eq!(head.code, Some(6));
        assert_eq!(head.request_id, None);
        let head = head_of("not json");
        assert_eq!((head.code, head.request_id), (None, None));
    }
}
