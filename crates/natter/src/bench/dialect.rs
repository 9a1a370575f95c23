//! The soak's accounts of the dialects beside OurChat: the pipe dialect (TCP lines), REST with
//! its push channel, and the service-code dialect (`POST /svc`). Each registers its accounts in
//! its own dialect, sends messages awaiting each one's confirmation, and reads a private chat
//! back whole as (index, text), oldest first.

use anyhow::{Context, bail, ensure};
use natter_client::{Target, pipe, rest};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The password of every pipe and REST soak account.
pub const PASSWORD: &str = "soak-password";

/// A soak run's unique number, from its tag: makes usernames, phones and UUIDs unique.
pub fn run_number(tag: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    tag.hash(&mut h);
    h.finish()
}

/// The pipe username of account `i` of run `run`.
pub fn pipe_username(run: u64, i: usize) -> String {
    format!("sp{run:x}n{i}")
}

/// The REST phone number of account `i` of run `run` (15 digits).
pub fn rest_phone(run: u64, i: usize) -> String {
    format!("9{:010}{:04}", run % 10_000_000_000, i % 10_000)
}

/// The service-code UUID and token of account `i` of run `run`.
pub fn svc_identity(run: u64, i: usize) -> (String, String) {
    let uuid = format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        run >> 32,
        run & 0xffff,
        i
    );
    (uuid, format!("soak-{run:x}-{i}"))
}

/// `bytes` in standard base64, with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * k)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The key a message with a file and no text is known by when read back: the file's path.
pub fn file_key(id: &str) -> String {
    format!("/files/{id}")
}

/// Register a pipe account; its ocid.
pub async fn pipe_register(addr: SocketAddr, username: &str) -> anyhow::Result<u64> {
    let mut conn = pipe::Conn::connect(addr).await?;
    let uid = pipe::register(&mut conn, username, PASSWORD, username).await?;
    let _ = conn.close(Duration::from_secs(5)).await;
    Ok(uid)
}

/// Log in over the pipe dialect.
pub async fn pipe_login(
    addr: SocketAddr,
    username: &str,
) -> anyhow::Result<(pipe::Client<tokio::net::TcpStream>, u64)> {
    let conn = pipe::Conn::connect(addr).await?;
    Ok(pipe::Client::login(conn, username, PASSWORD).await?)
}

/// Send `texts` to account `to` over one pipe connection, then `picture` if any (`send_file`
/// in one line); each text's index, and the picture's key ([`file_key`]) and index.
pub async fn pipe_send(
    addr: SocketAddr,
    username: &str,
    to: u64,
    texts: &[String],
    picture: Option<&[u8]>,
) -> anyhow::Result<(Vec<u64>, Option<(String, u64)>)> {
    let (mut client, _) = pipe_login(addr, username).await?;
    let mut out = Vec::with_capacity(texts.len());
    let (uid, to_field, token) = (client.uid.to_string(), to.to_string(), client.token.clone());
    for t in texts {
        let fields = ["0", uid.as_str(), &to_field, "0", t, &token];
        client.conn.send("send_message", &fields).await?;
        // send_message_succ|text|message_id|index
        let reply = pipe_reply(&mut client.conn).await?;
        ensure!(
            reply.first().map(String::as_str) == Some("send_message_succ") && reply.len() == 4,
            "a pipe message was refused: {}",
            reply.join("|")
        );
        out.push(
            reply[3]
                .parse()
                .context("a send_message_succ without an index")?,
        );
    }
    let mut sent = None;
    if let Some(bytes) = picture {
        let data = base64(bytes);
        let fields = ["0", &uid, &to_field, "0", "soak", &data, &token, "soak.png"];
        client.conn.send("send_file", &fields).await?;
        let reply = pipe_reply(&mut client.conn).await?;
        // send_file_succ|text|id|size|file_id|message_id|index
        ensure!(
            reply.first().map(String::as_str) == Some("send_file_succ") && reply.len() == 7,
            "a pipe picture was refused: {}",
            reply.join("|")
        );
        let index = reply[6]
            .parse()
            .context("a send_file_succ without an index")?;
        sent = Some((file_key(&reply[4]), index));
    }
    client.conn.close(Duration::from_secs(10)).await?;
    Ok((out, sent))
}

/// The next line that is not a pushed `message` line (a new login of the account is also
/// pushed what its other logins sent, which may come before a reply).
async fn pipe_reply(conn: &mut pipe::Conn<tokio::net::TcpStream>) -> anyhow::Result<Vec<String>> {
    loop {
        let fields = conn.recv().await?;
        if fields.first().map(String::as_str) != Some("message") {
            return Ok(fields);
        }
    }
}

/// Everything a pipe account missed (its only chat), read after a password login.
pub async fn pipe_read(addr: SocketAddr, username: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let (mut client, count) = pipe_login(addr, username).await?;
    let mut out: Vec<(u64, String)> = client
        .unread(count)
        .await?
        .into_iter()
        .map(|p| (p.message.index, p.message.text))
        .collect();
    // Past the announced cap, the rest come as live lines right after.
    while let Some(fields) = client.conn.recv_within(Duration::from_secs(3)).await? {
        if let Some(p) = pipe::message(&fields) {
            out.push((p.message.index, p.message.text));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    client.conn.close(Duration::from_secs(10)).await?;
    Ok(out)
}

/// Register a REST account; its ocid.
pub async fn rest_register(addr: SocketAddr, phone: &str) -> anyhow::Result<u64> {
    Ok(rest::Api::new(addr).register(phone, PASSWORD).await?)
}

/// Log in over REST, open and start the push channel, send `texts` to account `to` there
/// (each awaiting its confirmation), then `picture` if any (stored with `POST /api/file`, sent
/// as an image with its caption), close and log out; each message's index.
pub async fn rest_send(
    addr: SocketAddr,
    phone: &str,
    to: u64,
    texts: &[String],
    picture: Option<(&[u8], &str)>,
) -> anyhow::Result<Vec<u64>> {
    let mut api = rest::Api::new(addr);
    let me = api.login(phone, PASSWORD).await?;
    let mut push = api.push(me).await?;
    push.start("start").await?;
    let mut out = Vec::with_capacity(texts.len() + 1);
    for t in texts {
        let (status, body) = push.send_text(Target::Private(to), t).await?;
        ensure!(status == 1, "a REST send was refused: {body}");
        out.push(
            body["index"]
                .as_u64()
                .context("a confirmation without an index")?,
        );
    }
    if let Some((bytes, caption)) = picture {
        let stored = api
            .post(
                "/api/file",
                &json!({"name": "soak.png", "content": base64(bytes)}),
            )
            .await?
            .success("file")?;
        let path = stored.result()["path"]
            .as_str()
            .context("a stored file without a path")?
            .to_owned();
        let item = json!({"chatId": "", "toId": to.to_string(), "type": 1,
                          "info": [{"category": 0, "content": caption},
                                   {"category": 1, "content": path}]});
        push.send(json!([item])).await?;
        let index = loop {
            match push.packet().await? {
                rest::Packet::Confirmation { status: 1, body } => {
                    break body["index"]
                        .as_u64()
                        .context("a confirmation without an index")?;
                }
                rest::Packet::Items(_) => {}
                other => bail!("a REST picture was refused: {other:?}"),
            }
        };
        out.push(index);
    }
    push.close().await;
    api.logout().await?;
    Ok(out)
}

/// The private chat of a REST account with account `peer`, read over `GET /api/message`.
pub async fn rest_read(
    addr: SocketAddr,
    phone: &str,
    peer: u64,
) -> anyhow::Result<Vec<(u64, String)>> {
    let mut api = rest::Api::new(addr);
    let me = api.login(phone, PASSWORD).await?;
    // Newest first, page by page back to index 1 (`after` starts at 1, `before` at none).
    let mut out: Vec<(u64, String)> = Vec::new();
    loop {
        let path = match out.first() {
            None => format!("/api/message?toId={peer}&limit=500"),
            Some((lowest, _)) => format!("/api/message?toId={peer}&before={lowest}&limit=500"),
        };
        let a = api.get(&path).await?.success("history")?;
        let list = a.result()["messages"]
            .as_array()
            .context("a history without messages")?
            .clone();
        let mut page = Vec::with_capacity(list.len());
        for item in &list {
            let m = rest::message(item, me).context("a history item that is no message")?;
            // A file without a caption is known by its path.
            let path = item["info"]
                .as_array()
                .and_then(|parts| parts.iter().find(|p| p["category"] != 0))
                .and_then(|p| p["content"].as_str());
            let text = match path {
                Some(path) if m.text.is_empty() => path.to_owned(),
                _ => m.text,
            };
            page.push((m.index, text));
        }
        page.append(&mut out);
        out = page;
        if list.is_empty() || a.result()["more"] != Value::Bool(true) {
            break;
        }
    }
    api.logout().await?;
    Ok(out)
}

/// One service-code request on a fresh connection; the reply's `content`, which must say
/// `success`.
pub async fn svc(addr: SocketAddr, code: i64, content: Value) -> anyhow::Result<Value> {
    let body = json!({"service_code": code, "content": content}).to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /svc HTTP/1.1\r\nHost: natter\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (_, body) = text
        .split_once("\r\n\r\n")
        .context("a service-code answer without a head")?;
    let v: Value = serde_json::from_str(body).context("a service-code answer that is no JSON")?;
    if v["state_code"] != 200 || v["content"]["msg"] != "success" {
        bail!("service code {code} answered {v}");
    }
    Ok(v["content"].clone())
}

/// Register a service-code account; its ocid.
pub async fn svc_register(addr: SocketAddr, uuid: &str, token: &str) -> anyhow::Result<u64> {
    let c = svc(addr, 2, json!({"id": uuid, "token": token})).await?;
    c["ocid"].as_u64().context("a registration without an ocid")
}

/// The private chat of a service-code account with the account of UUID `peer` (code 7).
pub async fn svc_chat(addr: SocketAddr, token: &str, peer: &str) -> anyhow::Result<u64> {
    let c = svc(
        addr,
        7,
        json!({"token": token, "name": "", "is_group": false, "member": [{"id": peer}]}),
    )
    .await?;
    c["chat"].as_u64().context("a chat without an id")
}

/// Send `texts` (each its own client id too) to `chat` with code 5; each text's index.
pub async fn svc_send(
    addr: SocketAddr,
    token: &str,
    chat: u64,
    texts: &[String],
) -> anyhow::Result<Vec<u64>> {
    let mut out = Vec::with_capacity(texts.len());
    for t in texts {
        let c = svc(
            addr,
            5,
            json!({"token": token, "chat": chat, "msg": t, "client_id": t}),
        )
        .await?;
        out.push(c["index"].as_u64().context("a send without an index")?);
    }
    Ok(out)
}

/// A service-code message's key: its text, with a leading file part (`[image <id>] `) left
/// out; a file without a caption as [`file_key`].
fn svc_key(content: &str) -> String {
    for kind in ["[image ", "[file ", "[voice ", "[emoji "] {
        if let Some(rest) = content.strip_prefix(kind)
            && let Some((id, caption)) = rest.split_once(']')
        {
            return match caption.strip_prefix(' ') {
                Some(caption) => caption.to_owned(),
                None => file_key(id),
            };
        }
    }
    content.to_owned()
}

/// A service-code account's only private chat, read whole with code 9 (found with code 4).
pub async fn svc_read(addr: SocketAddr, token: &str) -> anyhow::Result<Vec<(u64, String)>> {
    let chats = svc(addr, 4, json!({"token": token})).await?;
    let private: Vec<u64> = chats["values"]
        .as_array()
        .context("a chat list without values")?
        .iter()
        .filter(|c| c["is_group"] == false)
        .filter_map(|c| c["id"].as_u64())
        .collect();
    let [chat] = private[..] else {
        bail!("the account has {} private chats, not one", private.len());
    };
    let mut out: Vec<(u64, String)> = Vec::new();
    loop {
        let from = out.last().map_or(1, |(i, _)| i + 1);
        let page = svc(
            addr,
            9,
            json!({"token": token, "chat": chat, "index": from, "count": 100}),
        )
        .await?;
        let list = page["values"].as_array().context("a page without values")?;
        for m in list {
            let index = m["index"].as_u64().context("a message without an index")?;
            let content = m["content"].as_str().unwrap_or_default();
            out.push((index, svc_key(content)));
        }
        if list.is_empty() {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_pads_as_the_standard_says() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, coded) in cases {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
    }
}
