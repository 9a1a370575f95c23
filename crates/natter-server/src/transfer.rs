//! `natter export` and `natter import`: a whole deployment as JSON lines, one row per line,
//! ids kept, from any store into any empty store (SQLite to PostgreSQL, or back).
//!
//! # Format
//! The first line names the format: `{"t":"natter-export","version":1}`. Then, in this order
//! (each row before the rows that name it), one object per row with its type in `t`:
//! `account`, `chat`, `member`, `message`, `friend` (one per direction), `friend_request`.
//! Fields are the store's columns (times in Unix milliseconds); a message's `parts` is its list
//! of `{category, content}`. Password hashes are exported (Argon2id, as stored): the file is
//! as sensitive as the database. Logins (sessions) and delivery marks are not: after an
//! import, everyone logs in again and is sent what they had not been sent before.

use crate::store::{
    Account, Category, ChatId, ChatRecord, FriendRequest, Index, MemberRecord, Message, MessageId,
    Ocid, Part, Record, Store, StoreError, Table,
};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};

/// The format's name and version, on the first line.
const FORMAT: &str = "natter-export";
const VERSION: u32 = 1;
/// Rows read or written per store call.
const PAGE: usize = 1000;

/// What an export or import moved, per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub accounts: u64,
    pub chats: u64,
    pub members: u64,
    pub messages: u64,
    pub friends: u64,
    pub friend_requests: u64,
}

impl Counts {
    fn add(&mut self, r: &Record) {
        match r {
            Record::Account(_) => self.accounts += 1,
            Record::Chat(_) => self.chats += 1,
            Record::Member(_) => self.members += 1,
            Record::Message(_) => self.messages += 1,
            Record::Friend { .. } => self.friends += 1,
            Record::FriendRequest(_) => self.friend_requests += 1,
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} accounts, {} chats, {} memberships, {} messages, {} friendships, {} friend requests",
            self.accounts,
            self.chats,
            self.members,
            self.messages,
            self.friends / 2,
            self.friend_requests
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
    #[error("line {line}: {why}")]
    Line { line: usize, why: String },
    #[error("the target store is not empty (it has accounts); import into a new one")]
    NotEmpty,
}

#[derive(Serialize, Deserialize)]
struct JsonPart {
    category: u8,
    content: String,
}

/// One line of the format.
#[derive(Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    #[serde(rename = "natter-export")]
    Header {
        version: u32,
    },
    Account {
        ocid: u64,
        uuid: String,
        email: Option<String>,
        phone: Option<String>,
        username: Option<String>,
        nickname: String,
        avatar: String,
        status: i64,
        password_hash: String,
        created_at: i64,
    },
    Chat {
        id: u64,
        kind: i64,
        name: String,
        owner: Option<u64>,
        pair: Option<(u64, u64)>,
        last_index: u64,
        created_at: i64,
    },
    Member {
        chat: u64,
        ocid: u64,
        role: i64,
        joined_index: u64,
        delivered_index: u64,
        joined_at: i64,
    },
    Message {
        id: u64,
        chat: u64,
        index: u64,
        sender: u64,
        kind: u8,
        parts: Vec<JsonPart>,
        client_id: Option<String>,
        created_at: i64,
    },
    Friend {
        ocid: u64,
        friend: u64,
        since: i64,
    },
    FriendRequest {
        from: u64,
        to: u64,
        message: String,
        created_at: i64,
    },
}

impl From<&Record> for Line {
    fn from(r: &Record) -> Self {
        match r {
            Record::Account(a) => Line::Account {
                ocid: a.ocid.0,
                uuid: a.uuid.clone(),
                email: a.email.clone(),
                phone: a.phone.clone(),
                username: a.username.clone(),
                nickname: a.nickname.clone(),
                avatar: a.avatar.clone(),
                status: a.status,
                password_hash: a.password_hash.clone(),
                created_at: a.created_at,
            },
            Record::Chat(c) => Line::Chat {
                id: c.id.0,
                kind: c.kind,
                name: c.name.clone(),
                owner: c.owner.map(|o| o.0),
                pair: c.pair.map(|(lo, hi)| (lo.0, hi.0)),
                last_index: c.last_index.0,
                created_at: c.created_at,
            },
            Record::Member(m) => Line::Member {
                chat: m.chat.0,
                ocid: m.ocid.0,
                role: m.role,
                joined_index: m.joined_index.0,
                delivered_index: m.delivered_index.0,
                joined_at: m.joined_at,
            },
            Record::Message(m) => Line::Message {
                id: m.id.0,
                chat: m.chat.0,
                index: m.index.0,
                sender: m.sender.0,
                kind: m.kind,
                parts: m
                    .parts
                    .iter()
                    .map(|p| JsonPart {
                        category: p.category.0,
                        content: p.content.clone(),
                    })
                    .collect(),
                client_id: m.client_id.clone(),
                created_at: m.created_at,
            },
            Record::Friend {
                ocid,
                friend,
                since,
            } => Line::Friend {
                ocid: ocid.0,
                friend: friend.0,
                since: *since,
            },
            Record::FriendRequest(r) => Line::FriendRequest {
                from: r.from.0,
                to: r.to.0,
                message: r.message.clone(),
                created_at: r.created_at,
            },
        }
    }
}

impl Line {
    /// The record, or `None` for the header.
    fn record(self) -> Option<Record> {
        Some(match self {
            Line::Header { .. } => return None,
            Line::Account {
                ocid,
                uuid,
                email,
                phone,
                username,
                nickname,
                avatar,
                status,
                password_hash,
                created_at,
            } => Record::Account(Account {
                ocid: Ocid(ocid),
                uuid,
                email,
                phone,
                username,
                nickname,
                avatar,
                status,
                password_hash,
                created_at,
            }),
            Line::Chat {
                id,
                kind,
                name,
                owner,
                pair,
                last_index,
                created_at,
            } => Record::Chat(ChatRecord {
                id: ChatId(id),
                kind,
                name,
                owner: owner.map(Ocid),
                pair: pair.map(|(lo, hi)| (Ocid(lo), Ocid(hi))),
                last_index: Index(last_index),
                created_at,
            }),
            Line::Member {
                chat,
                ocid,
                role,
                joined_index,
                delivered_index,
                joined_at,
            } => Record::Member(MemberRecord {
                chat: ChatId(chat),
                ocid: Ocid(ocid),
                role,
                joined_index: Index(joined_index),
                delivered_index: Index(delivered_index),
                joined_at,
            }),
            Line::Message {
                id,
                chat,
                index,
                sender,
                kind,
                parts,
                client_id,
                created_at,
            } => Record::Message(Message {
                id: MessageId(id),
                chat: ChatId(chat),
                index: Index(index),
                sender: Ocid(sender),
                kind,
                parts: parts
                    .into_iter()
                    .map(|p| Part {
                        category: Category(p.category),
                        content: p.content,
                    })
                    .collect(),
                client_id,
                created_at,
            }),
            Line::Friend {
                ocid,
                friend,
                since,
            } => Record::Friend {
                ocid: Ocid(ocid),
                friend: Ocid(friend),
                since,
            },
            Line::FriendRequest {
                from,
                to,
                message,
                created_at,
            } => Record::FriendRequest(FriendRequest {
                from: Ocid(from),
                to: Ocid(to),
                message,
                created_at,
            }),
        })
    }
}

/// A record's key in its table (where the next page starts).
fn key(r: &Record) -> (i64, i64) {
    match r {
        Record::Account(a) => (a.ocid.0 as i64, 0),
        Record::Chat(c) => (c.id.0 as i64, 0),
        Record::Member(m) => (m.chat.0 as i64, m.ocid.0 as i64),
        Record::Message(m) => (m.id.0 as i64, 0),
        Record::Friend { ocid, friend, .. } => (ocid.0 as i64, friend.0 as i64),
        Record::FriendRequest(r) => (r.from.0 as i64, r.to.0 as i64),
    }
}

/// Write every row of `store` to `out` as JSON lines.
///
/// # Errors
/// The store fails, or `out` cannot be written.
pub async fn export(store: &dyn Store, out: &mut dyn Write) -> Result<Counts, TransferError> {
    let mut counts = Counts::default();
    serde_json::to_writer(&mut *out, &Line::Header { version: VERSION })
        .map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    for table in Table::ALL {
        let mut after = (i64::MIN, i64::MIN);
        loop {
            let page = store.export(table, after, PAGE as u32).await?;
            for record in &page {
                serde_json::to_writer(&mut *out, &Line::from(record))
                    .map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
                counts.add(record);
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = key(last),
                _ => break,
            }
        }
    }
    out.flush()?;
    Ok(counts)
}

/// Read JSON lines written by [`export`] into `store`, which must have no accounts.
///
/// # Errors
/// A line that is not of the format (its number is given), or the store refuses a row.
pub async fn import(store: &dyn Store, input: &mut dyn BufRead) -> Result<Counts, TransferError> {
    if !store.accounts(Ocid(0), 1).await?.is_empty() {
        return Err(TransferError::NotEmpty);
    }
    let mut counts = Counts::default();
    let mut batch = Vec::with_capacity(PAGE);
    let mut text = String::new();
    let mut n = 0;
    loop {
        text.clear();
        let read = input
            .read_line(&mut text)
            .map_err(|e| TransferError::Line {
                line: n + 1,
                why: e.to_string(),
            })?;
        if read == 0 {
            break;
        }
        n += 1;
        if text.trim().is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(&text).map_err(|e| TransferError::Line {
            line: n,
            why: e.to_string(),
        })?;
        if n == 1 {
            match line {
                Line::Header { version: VERSION } => continue,
                Line::Header { version } => {
                    return Err(TransferError::Line {
                        line: 1,
                        why: format!("format version {version}; this natter reads {VERSION}"),
                    });
                }
                _ => {
                    return Err(TransferError::Line {
                        line: 1,
                        why: format!("not a natter export (no {FORMAT} header)"),
                    });
                }
            }
        }
        let Some(record) = line.record() else {
            return Err(TransferError::Line {
                line: n,
                why: "a second header".into(),
            });
        };
        counts.add(&record);
        batch.push(record);
        if batch.len() == PAGE {
            store
                .import(&batch)
                .await
                .map_err(|e| TransferError::Line {
                    line: n,
                    why: format!("the store refused a row near here: {e}"),
                })?;
            batch.clear();
        }
    }
    if n == 0 {
        return Err(TransferError::Line {
            line: 1,
            why: "empty input".into(),
        });
    }
    if !batch.is_empty() {
        store
            .import(&batch)
            .await
            .map_err(|e| TransferError::Line {
                line: n,
                why: format!("the store refused a row near here: {e}"),
            })?;
    }
    store.finish_import().await?;
    Ok(counts)
}
