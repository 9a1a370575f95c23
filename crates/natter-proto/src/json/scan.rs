//! A strict reader of the few JSON shapes decoded once per message (a v1 text frame), without
//! building a tree or a map.
//!
//! It reads only what it is sure of: every method returns `None` at the first byte it does not
//! accept, and its caller then hands the whole frame to the general decoder (`serde_json`),
//! which either reads it the same way or names what is wrong. So this reader may refuse more
//! than `serde_json` does, never less, and what it accepts it reads as `serde_json` would
//! (tested against it in `v1.rs`).

use std::borrow::Cow;

pub struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.pos).copied()
    }

    /// Skip JSON whitespace.
    pub fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// Whitespace, then exactly `byte`.
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// Whitespace, then whether a string comes next.
    pub fn at_string(&mut self) -> bool {
        self.ws();
        self.peek() == Some(b'"')
    }

    /// Whitespace, then `null` if it comes next (consumed).
    pub fn null(&mut self) -> bool {
        self.ws();
        let null = self.bytes()[self.pos..].starts_with(b"null");
        if null {
            self.pos += 4;
        }
        null
    }

    /// Nothing but whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        self.ws();
        (self.pos == self.text.len()).then_some(())
    }

    /// A string literal, borrowed when it holds no escape.
    pub fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match *self.bytes().get(self.pos)? {
                b'"' => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Some(Cow::Borrowed(s));
                }
                b'\\' => break,
                0..0x20 => return None,
                _ => self.pos += 1,
            }
        }
        let mut owned = String::from(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            while let Some(b) = self.peek() {
                match b {
                    b'"' | b'\\' => break,
                    0..0x20 => return None,
                    _ => self.pos += 1,
                }
            }
            owned.push_str(&self.text[run..self.pos]);
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(owned));
                }
                _ => {
                    self.pos += 1;
                    owned.push(self.escape()?);
                }
            }
        }
    }

    /// The character of an escape, after its backslash.
    fn escape(&mut self) -> Option<char> {
        let b = self.peek()?;
        self.pos += 1;
        Some(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..0xDC00 => {
                        // A high surrogate must be followed by an escaped low one.
                        if !self.bytes()[self.pos..].starts_with(b"\\u") {
                            return None;
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return None;
                        }
                        let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(c)?
                    }
                    0xDC00..0xE000 => return None,
                    _ => char::from_u32(unit)?,
                }
            }
            _ => return None,
        })
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.pos..self.pos + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// The text of a JSON number (grammar checked), and whether it is a plain integer.
    fn number(&mut self) -> Option<(&'a str, bool)> {
        self.ws();
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.first_digit()?;
            integer = false;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.first_digit()?;
            integer = false;
        }
        Some((&self.text[start..self.pos], integer))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn first_digit(&mut self) -> Option<()> {
        self.peek().filter(u8::is_ascii_digit)?;
        self.digits();
        Some(())
    }

    /// A non-negative integer that fits a `u64`.
    pub fn uint(&mut self) -> Option<u64> {
        match self.number()? {
            (text, true) if !text.starts_with('-') => text.parse().ok(),
            _ => None,
        }
    }

    /// A number, `true`, `false`, `null` or a string, skipped.
    pub fn skip_scalar(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.word("true"),
            b'f' => self.word("false"),
            b'n' => self.null().then_some(()),
            _ => self.number().map(drop),
        }
    }

    fn word(&mut self, word: &str) -> Option<()> {
        self.bytes()[self.pos..]
            .starts_with(word.as_bytes())
            .then(|| self.pos += word.len())
    }

    /// An object: `field` is called with each key and must read its value.
    pub fn object(&mut self, mut field: impl FnMut(&mut Self, &str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, &key)?;
            self.ws();
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}
