//! A message as every dialect's encoder sees it: the neutral form between the server's record
//! of a message and each dialect's frame for it.

use crate::{ChatId, Index, MessageId, Ocid};

/// Message types (seed 003's list), kept with every stored message.
pub mod kind {
    pub const SYSTEM: u8 = 0;
    pub const NORMAL: u8 = 1;
    pub const REQUEST: u8 = 2;
    pub const TOPIC: u8 = 3;
    pub const NOTICE: u8 = 4;
    pub const TASK: u8 = 5;
    pub const LINK: u8 = 6;
    pub const GROUP: u8 = 7;
}

/// One stored message, borrowed for encoding.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub id: MessageId,
    pub chat: ChatId,
    pub index: Index,
    /// When the server stored it, in Unix milliseconds.
    pub at_ms: i64,
    pub sender: Ocid,
    /// In a private chat, the account that is not the sender (the receiver); `None` in a group.
    pub private_to: Option<Ocid>,
    /// The message type (see [`kind`]).
    pub kind: u8,
    /// The message's text: its text parts joined (a file's caption, possibly empty).
    pub text: &'a str,
    /// The file the message carries, if any.
    pub file: Option<FileView<'a>>,
}

/// What a file in a message is (the content category of its part).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Image,
    Voice,
    File,
    Emoji,
}

impl FileKind {
    /// The kind of a part's category (seed 003's 1 image, 2 voice, 3 file; natter's 4 emoji).
    pub const fn of(category: u8) -> Option<Self> {
        Some(match category {
            1 => Self::Image,
            2 => Self::Voice,
            3 => Self::File,
            4 => Self::Emoji,
            _ => return None,
        })
    }

    /// Its name in a file's JSON (`kind`) and in text renderings.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Voice => "voice",
            Self::File => "file",
            Self::Emoji => "emoji",
        }
    }
}

/// A file in a message: its kind and its JSON object as the server wrote it (`id`, `kind`,
/// `name`, `size`, `mime`, and `width`/`height` or `duration_ms` where they apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileView<'a> {
    pub kind: FileKind,
    pub json: &'a str,
}

impl MessageView<'_> {
    /// When it was stored, in Unix seconds (what the OurChat dialects send).
    pub const fn time_s(&self) -> i64 {
        self.at_ms.div_euclid(1000)
    }
}
