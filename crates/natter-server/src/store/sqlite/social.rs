//! The social traits on SQLite: profiles, search, account security, remarks and blocks; groups,
//! join requests and invitations; read state and kept notices. Every write goes through the
//! pool, taking its turn on the store's `writes` lock.

use super::SqliteStore;
use crate::store::rows::{
    self, ACCOUNT_COLUMNS, AsSql, GROUP_SUMMARY_COLUMNS, MESSAGE_COLUMNS, backend,
};
use crate::store::{
    Account, ChatId, ChatState, GroupEdit, GroupSummary, Groups, Identity, Index, Invitation,
    JoinRequest, NewsCounts, Ocid, ProfileEdit, Profiles, ReadState, ResetState, Result, Revoke,
    Role, SearchBy, SessionInfo, StoreError,
};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{SqliteArguments, SqliteConnection};

/// The largest code point: a string starting with a prefix sorts below the prefix followed by
/// it, so `[prefix, prefix || char(MAX)]` is every string with that prefix.
const PREFIX_END: &str = "char(1114111)";

/// One value bound into a statement built at run time.
enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments> {
    for b in binds {
        query = match b {
            Bind::Text(t) => query.bind(t),
            Bind::OptText(t) => query.bind(t),
            Bind::Int(i) => query.bind(i),
        };
    }
    query
}

fn identity_column(identity: &Identity) -> (&'static str, &str) {
    match identity {
        Identity::Email(v) => ("email", v),
        Identity::Phone(v) => ("phone", v),
        Identity::Username(v) => ("username", v),
    }
}

fn decode_accounts(rows: &[sqlx::sqlite::SqliteRow]) -> Result<Vec<Account>> {
    rows.iter()
        .map(rows::account)
        .collect::<Result<_, _>>()
        .map_err(backend)
}

/// Revoke sessions of `ocid` (all but `keep`) and drop their devices' marks, in `tx`.
async fn revoke_sessions(
    tx: &mut SqliteConnection,
    ocid: Ocid,
    keep: Option<&[u8]>,
) -> Result<u64> {
    let keep = keep.map(<[u8]>::to_vec).unwrap_or_default();
    sqlx::query(
        "DELETE FROM device_marks WHERE token_hash IN
         (SELECT token_hash FROM sessions WHERE ocid = ? AND revoked = 0 AND token_hash != ?)",
    )
    .bind(ocid.sql())
    .bind(&keep)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let revoked = sqlx::query(
        "UPDATE sessions SET revoked = 1 WHERE ocid = ? AND revoked = 0 AND token_hash != ?",
    )
    .bind(ocid.sql())
    .bind(&keep)
    .execute(&mut *tx)
    .await
    .map_err(backend)?
    .rows_affected();
    Ok(revoked)
}

#[async_trait]
impl Profiles for SqliteStore {
    async fn update_profile(&self, ocid: Ocid, edit: &ProfileEdit, now: i64) -> Result<Account> {
        let mut sets = vec!["modified_at = ?"];
        let mut binds = vec![Bind::Int(now)];
        let texts = [
            ("nickname = ?", &edit.nickname),
            ("avatar = ?", &edit.avatar),
            ("signature = ?", &edit.signature),
            ("description = ?", &edit.description),
            ("status_text = ?", &edit.status_text),
        ];
        for (set, value) in texts {
            if let Some(v) = value {
                sets.push(set);
                binds.push(Bind::Text(v.clone()));
            }
        }
        if let Some(sex) = edit.sex {
            sets.push("sex = ?");
            binds.push(Bind::Int(i64::from(sex)));
        }
        for (set, value) in [("username = ?", &edit.username), ("phone = ?", &edit.phone)] {
            if let Some(v) = value {
                sets.push(set);
                binds.push(Bind::OptText(v.clone()));
            }
        }
        binds.push(Bind::Int(ocid.sql()));
        let sql = format!(
            "UPDATE accounts SET {} WHERE ocid = ? AND deleted_at IS NULL RETURNING {ACCOUNT_COLUMNS}",
            sets.join(", ")
        );
        let _turn = self.writes.lock().await;
        let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .ok_or_else(|| StoreError::Backend(format!("no account {ocid} to update")))?;
        rows::account(&row).map_err(backend)
    }

    async fn account_by(&self, identity: &Identity) -> Result<Option<Account>> {
        let (column, value) = identity_column(identity);
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = ? AND deleted_at IS NULL"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(value)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::account).transpose().map_err(backend)
    }

    async fn search_accounts(
        &self,
        by: &SearchBy,
        after: Ocid,
        limit: u32,
    ) -> Result<Vec<Account>> {
        let (clause, value) = match by {
            SearchBy::Ocid(o) => ("ocid = ?1".to_owned(), Bind::Int(o.sql())),
            SearchBy::Identity(id) => {
                let (column, value) = identity_column(id);
                (format!("{column} = ?1"), Bind::Text(value.to_owned()))
            }
            // SQLite's lower() folds ASCII letters only; both sides go through it alike.
            SearchBy::NicknamePrefix(p) => (
                format!(
                    "lower(nickname) >= lower(?1) AND lower(nickname) < lower(?1) || {PREFIX_END}"
                ),
                Bind::Text(p.clone()),
            ),
        };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause} AND ocid > ?2
             AND deleted_at IS NULL ORDER BY ocid LIMIT ?3"
        );
        let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), vec![value])
            .bind(after.sql())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        decode_accounts(&rows)
    }

    async fn set_password(
        &self,
        ocid: Ocid,
        password_hash: &str,
        revoke: Revoke<'_>,
    ) -> Result<u64> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE accounts SET password_hash = ? WHERE ocid = ?")
            .bind(password_hash)
            .bind(ocid.sql())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let revoked = match revoke {
            Revoke::None => 0,
            Revoke::AllBut(keep) => revoke_sessions(&mut tx, ocid, Some(keep)).await?,
            Revoke::All => revoke_sessions(&mut tx, ocid, None).await?,
        };
        tx.commit().await.map_err(backend)?;
        Ok(revoked)
    }

    async fn set_security(&self, ocid: Ocid, question: &str, answer_hash: &str) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "UPDATE accounts SET security_question = ?, security_answer_hash = ?,
             reset_failures = 0, reset_blocked_until = 0 WHERE ocid = ?",
        )
        .bind(question)
        .bind(answer_hash)
        .bind(ocid.sql())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn reset_state(&self, ocid: Ocid) -> Result<Option<ResetState>> {
        let row = sqlx::query(
            "SELECT security_question, security_answer_hash, reset_failures, reset_blocked_until
             FROM accounts WHERE ocid = ? AND deleted_at IS NULL",
        )
        .bind(ocid.sql())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        let Some(row) = row else { return Ok(None) };
        let get = || -> std::result::Result<ResetState, sqlx::Error> {
            Ok(ResetState {
                question: row.try_get("security_question")?,
                answer_hash: row.try_get("security_answer_hash")?,
                failures: row.try_get::<i64, _>("reset_failures")? as u32,
                blocked_until: row.try_get("reset_blocked_until")?,
            })
        };
        get().map(Some).map_err(backend)
    }

    async fn set_reset_failures(
        &self,
        ocid: Ocid,
        failures: u32,
        blocked_until: i64,
    ) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "UPDATE accounts SET reset_failures = ?, reset_blocked_until = ? WHERE ocid = ?",
        )
        .bind(i64::from(failures))
        .bind(blocked_until)
        .bind(ocid.sql())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn count_reset_attempt(
        &self,
        ocid: Ocid,
        max: u32,
        now: i64,
        lock_until: i64,
    ) -> Result<Option<i64>> {
        let _turn = self.writes.lock().await;
        sqlx::query_scalar(
            "UPDATE accounts SET
             reset_failures = CASE WHEN reset_failures + 1 >= ?1 THEN 0
                              ELSE reset_failures + 1 END,
             reset_blocked_until = CASE WHEN reset_failures + 1 >= ?1 THEN ?2
                                   ELSE reset_blocked_until END
             WHERE ocid = ?3 AND reset_blocked_until <= ?4 AND deleted_at IS NULL
             RETURNING reset_blocked_until",
        )
        .bind(i64::from(max))
        .bind(lock_until)
        .bind(ocid.sql())
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)
    }

    async fn sessions_of(&self, ocid: Ocid, now: i64) -> Result<Vec<SessionInfo>> {
        let rows: Vec<(Vec<u8>, i64, i64)> = sqlx::query_as(
            "SELECT token_hash, created_at, expires_at FROM sessions
             WHERE ocid = ? AND revoked = 0 AND expires_at > ? ORDER BY created_at, token_hash",
        )
        .bind(ocid.sql())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.into_iter()
            .map(|(hash, created_at, expires_at)| rows::session_info(hash, created_at, expires_at))
            .collect()
    }

    async fn delete_account(&self, ocid: Ocid, now: i64) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        revoke_sessions(&mut tx, ocid, None).await?;
        let o = ocid.sql();
        sqlx::query(
            "UPDATE accounts SET email = NULL, phone = NULL, username = NULL, password_hash = '',
             nickname = '', avatar = '', signature = '', description = '', status_text = '',
             security_question = NULL, security_answer_hash = NULL, deleted_at = ?,
             modified_at = ? WHERE ocid = ?",
        )
        .bind(now)
        .bind(now)
        .bind(o)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        for sql in [
            "DELETE FROM friends WHERE ocid = ?1 OR friend = ?1",
            "DELETE FROM friend_requests WHERE from_ocid = ?1 OR to_ocid = ?1",
            "DELETE FROM blocks WHERE ocid = ?1 OR blocked = ?1",
            "DELETE FROM join_requests WHERE ocid = ?1",
            "DELETE FROM invitations WHERE ocid = ?1 OR by_ocid = ?1",
            "DELETE FROM pending_notices WHERE ocid = ?1",
            "DELETE FROM service_tokens WHERE ocid = ?1",
            "DELETE FROM account_settings WHERE ocid = ?1",
        ] {
            sqlx::query(sql)
                .bind(o)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn set_remark(&self, ocid: Ocid, friend: Ocid, remark: &str) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let changed = sqlx::query("UPDATE friends SET remark = ? WHERE ocid = ? AND friend = ?")
            .bind(remark)
            .bind(ocid.sql())
            .bind(friend.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(changed > 0)
    }

    async fn block(&self, ocid: Ocid, other: Ocid, now: i64) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sqlx::query("INSERT OR IGNORE INTO blocks (ocid, blocked, since) VALUES (?, ?, ?)")
            .bind(ocid.sql())
            .bind(other.sql())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for sql in [
            "DELETE FROM friends WHERE (ocid = ?1 AND friend = ?2) OR (ocid = ?2 AND friend = ?1)",
            "DELETE FROM friend_requests WHERE (from_ocid = ?1 AND to_ocid = ?2)
             OR (from_ocid = ?2 AND to_ocid = ?1)",
        ] {
            sqlx::query(sql)
                .bind(ocid.sql())
                .bind(other.sql())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn unblock(&self, ocid: Ocid, other: Ocid) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let gone = sqlx::query("DELETE FROM blocks WHERE ocid = ? AND blocked = ?")
            .bind(ocid.sql())
            .bind(other.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(gone > 0)
    }

    async fn blocked(&self, ocid: Ocid) -> Result<Vec<Ocid>> {
        let rows: Vec<i64> =
            sqlx::query_scalar("SELECT blocked FROM blocks WHERE ocid = ? ORDER BY blocked")
                .bind(ocid.sql())
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows.into_iter().map(|o| Ocid(o as u64)).collect())
    }

    async fn blocks(&self, blocker: Ocid, other: Ocid) -> Result<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT since FROM blocks WHERE ocid = ? AND blocked = ?")
                .bind(blocker.sql())
                .bind(other.sql())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(found.is_some())
    }
    async fn group_adds(&self, ocid: Ocid) -> Result<Option<u8>> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT group_adds FROM account_settings WHERE ocid = ?")
                .bind(ocid.sql())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(found.map(|v| v.clamp(0, 255) as u8))
    }

    async fn set_group_adds(&self, ocid: Ocid, value: u8) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_settings (ocid, group_adds) VALUES (?, ?)
             ON CONFLICT (ocid) DO UPDATE SET group_adds = excluded.group_adds",
        )
        .bind(ocid.sql())
        .bind(i64::from(value))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Groups for SqliteStore {
    async fn update_group(&self, chat: ChatId, edit: &GroupEdit) -> Result<bool> {
        let mut sets = Vec::new();
        let mut binds = Vec::new();
        for (set, value) in [
            ("name = ?", &edit.name),
            ("description = ?", &edit.description),
            ("avatar = ?", &edit.avatar),
        ] {
            if let Some(v) = value {
                sets.push(set);
                binds.push(Bind::Text(v.clone()));
            }
        }
        if let Some(mode) = edit.join_mode {
            sets.push("join_mode = ?");
            binds.push(Bind::Int(mode.code()));
        }
        if sets.is_empty() {
            let found: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM chats WHERE id = ? AND kind = 1 AND disbanded_at IS NULL",
            )
            .bind(chat.sql())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
            return Ok(found.is_some());
        }
        binds.push(Bind::Int(chat.sql()));
        let sql = format!(
            "UPDATE chats SET {} WHERE id = ? AND kind = 1 AND disbanded_at IS NULL",
            sets.join(", ")
        );
        let _turn = self.writes.lock().await;
        let changed = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), binds)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(changed > 0)
    }

    async fn add_member(
        &self,
        chat: ChatId,
        ocid: Ocid,
        role: Role,
        now: i64,
    ) -> Result<Option<Index>> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT last_index FROM chats WHERE id = ? AND disbanded_at IS NULL",
        )
        .bind(chat.sql())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(last) = last else {
            return Err(StoreError::NoSuchChat);
        };
        let added = sqlx::query(
            "INSERT OR IGNORE INTO members (chat_id, ocid, role, joined_index, delivered_index,
             read_index, joined_at) VALUES (?1, ?2, ?3, ?4, ?4, ?4, ?5)",
        )
        .bind(chat.sql())
        .bind(ocid.sql())
        .bind(role.code())
        .bind(last)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        for sql in [
            "DELETE FROM join_requests WHERE chat_id = ? AND ocid = ?",
            "DELETE FROM invitations WHERE chat_id = ? AND ocid = ?",
        ] {
            sqlx::query(sql)
                .bind(chat.sql())
                .bind(ocid.sql())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok((added > 0).then_some(Index(last as u64)))
    }

    async fn remove_member(&self, chat: ChatId, ocid: Ocid) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let gone = sqlx::query("DELETE FROM members WHERE chat_id = ? AND ocid = ?")
            .bind(chat.sql())
            .bind(ocid.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(gone > 0)
    }

    async fn set_role(&self, chat: ChatId, ocid: Ocid, role: Role) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let changed = sqlx::query("UPDATE members SET role = ? WHERE chat_id = ? AND ocid = ?")
            .bind(role.code())
            .bind(chat.sql())
            .bind(ocid.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(changed > 0)
    }

    async fn transfer_group(&self, chat: ChatId, from: Ocid, to: Ocid) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let roles: Vec<(i64, i64)> =
            sqlx::query_as("SELECT ocid, role FROM members WHERE chat_id = ? AND ocid IN (?, ?)")
                .bind(chat.sql())
                .bind(from.sql())
                .bind(to.sql())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        let role_of = |o: Ocid| roles.iter().find(|(x, _)| *x == o.sql()).map(|(_, r)| *r);
        if role_of(from) != Some(Role::Owner.code()) || role_of(to).is_none() || from == to {
            return Ok(false);
        }
        for (ocid, role) in [(from, Role::Admin), (to, Role::Owner)] {
            sqlx::query("UPDATE members SET role = ? WHERE chat_id = ? AND ocid = ?")
                .bind(role.code())
                .bind(chat.sql())
                .bind(ocid.sql())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        sqlx::query("UPDATE chats SET owner = ? WHERE id = ?")
            .bind(to.sql())
            .bind(chat.sql())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn disband(&self, chat: ChatId, now: i64) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let marked = sqlx::query(
            "UPDATE chats SET disbanded_at = ? WHERE id = ? AND kind = 1 AND disbanded_at IS NULL",
        )
        .bind(now)
        .bind(chat.sql())
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
        if marked == 0 {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM members WHERE chat_id = ?",
            "DELETE FROM join_requests WHERE chat_id = ?",
            "DELETE FROM invitations WHERE chat_id = ?",
        ] {
            sqlx::query(sql)
                .bind(chat.sql())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn request_join(&self, chat: ChatId, ocid: Ocid, message: &str, now: i64) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "INSERT INTO join_requests (chat_id, ocid, message, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (chat_id, ocid) DO UPDATE SET message = excluded.message,
             created_at = excluded.created_at",
        )
        .bind(chat.sql())
        .bind(ocid.sql())
        .bind(message)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn join_requests(&self, chat: ChatId) -> Result<Vec<JoinRequest>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT ocid, message, created_at FROM join_requests WHERE chat_id = ?
             ORDER BY created_at, ocid",
        )
        .bind(chat.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(o, message, created_at)| JoinRequest {
                chat,
                ocid: Ocid(o as u64),
                message,
                created_at,
            })
            .collect())
    }

    async fn take_join_request(&self, chat: ChatId, ocid: Ocid) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let gone = sqlx::query("DELETE FROM join_requests WHERE chat_id = ? AND ocid = ?")
            .bind(chat.sql())
            .bind(ocid.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(gone > 0)
    }

    async fn join_requests_for(&self, admin: Ocid) -> Result<Vec<JoinRequest>> {
        let rows: Vec<(i64, i64, String, i64)> = sqlx::query_as(
            "SELECT j.chat_id, j.ocid, j.message, j.created_at FROM join_requests j
             JOIN members m ON m.chat_id = j.chat_id AND m.ocid = ? AND m.role IN (1, 2)
             ORDER BY j.created_at, j.chat_id, j.ocid",
        )
        .bind(admin.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(c, o, message, created_at)| JoinRequest {
                chat: ChatId(c as u64),
                ocid: Ocid(o as u64),
                message,
                created_at,
            })
            .collect())
    }

    async fn invite(&self, chat: ChatId, ocid: Ocid, by: Ocid, now: i64) -> Result<()> {
        let _turn = self.writes.lock().await;
        sqlx::query(
            "INSERT INTO invitations (chat_id, ocid, by_ocid, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (chat_id, ocid) DO UPDATE SET by_ocid = excluded.by_ocid,
             created_at = excluded.created_at",
        )
        .bind(chat.sql())
        .bind(ocid.sql())
        .bind(by.sql())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn take_invitation(&self, chat: ChatId, ocid: Ocid) -> Result<bool> {
        let _turn = self.writes.lock().await;
        let gone = sqlx::query("DELETE FROM invitations WHERE chat_id = ? AND ocid = ?")
            .bind(chat.sql())
            .bind(ocid.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(gone > 0)
    }

    async fn invitations(&self, ocid: Ocid) -> Result<Vec<Invitation>> {
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT chat_id, by_ocid, created_at FROM invitations WHERE ocid = ?
             ORDER BY created_at, chat_id",
        )
        .bind(ocid.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(c, by, created_at)| Invitation {
                chat: ChatId(c as u64),
                ocid,
                by: Ocid(by as u64),
                created_at,
            })
            .collect())
    }

    async fn groups_of(&self, ocid: Ocid) -> Result<Vec<GroupSummary>> {
        let sql = format!(
            "SELECT {GROUP_SUMMARY_COLUMNS}, m.role FROM members m JOIN chats c ON c.id = m.chat_id
             WHERE m.ocid = ? AND c.kind = 1 ORDER BY c.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ocid.sql())
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| rows::group_summary(r, true).map_err(backend))
            .collect()
    }

    async fn find_groups(
        &self,
        prefix: &str,
        after: ChatId,
        limit: u32,
    ) -> Result<Vec<GroupSummary>> {
        let sql = format!(
            "SELECT {GROUP_SUMMARY_COLUMNS} FROM chats c WHERE c.kind = 1 AND c.disbanded_at IS NULL
             AND lower(c.name) >= lower(?1) AND lower(c.name) < lower(?1) || {PREFIX_END}
             AND c.id > ?2 ORDER BY c.id LIMIT ?3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(prefix)
            .bind(after.sql())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|r| rows::group_summary(r, false).map_err(backend))
            .collect()
    }
}

#[async_trait]
impl ReadState for SqliteStore {
    async fn mark_read(&self, ocid: Ocid, chat: ChatId, index: Index) -> Result<Option<Index>> {
        let _turn = self.writes.lock().await;
        let read: Option<i64> = sqlx::query_scalar(
            "UPDATE members SET read_index = MAX(read_index,
             MIN(?, (SELECT last_index FROM chats WHERE id = members.chat_id)))
             WHERE chat_id = ? AND ocid = ? RETURNING read_index",
        )
        // An index past what SQL holds is past the last message all the same.
        .bind(i64::try_from(index.0).unwrap_or(i64::MAX))
        .bind(chat.sql())
        .bind(ocid.sql())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(read.map(|r| Index(r as u64)))
    }

    async fn chat_states(&self, ocid: Ocid) -> Result<Vec<ChatState>> {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT m.chat_id, m.read_index, c.last_index,
             (SELECT COUNT(*) FROM (SELECT 1 FROM messages x WHERE x.chat_id = m.chat_id
              AND x.idx > m.read_index AND x.sender != m.ocid LIMIT 100)) AS unread
             FROM members m JOIN chats c ON c.id = m.chat_id WHERE m.ocid = ?",
        )
        .bind(ocid.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let last_sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? AND idx = ?");
        let mut out = Vec::with_capacity(rows.len());
        for (chat, read, last_index, unread) in rows {
            let last = if last_index > 0 {
                let row = sqlx::query(sqlx::AssertSqlSafe(last_sql.clone()))
                    .bind(chat)
                    .bind(last_index)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(backend)?;
                row.as_ref()
                    .map(rows::message)
                    .transpose()
                    .map_err(backend)?
            } else {
                None
            };
            out.push(ChatState {
                chat: ChatId(chat as u64),
                last_index: Index(last_index as u64),
                last,
                read: Index(read as u64),
                unread: unread as u64,
            });
        }
        Ok(out)
    }

    async fn news_counts(&self, ocid: Ocid) -> Result<NewsCounts> {
        self.readers.with(|c| {
            let mut st = c.prepare_cached(super::reads::NEWS_COUNTS_SQL)?;
            st.query_row([ocid.sql()], |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
                Ok(NewsCounts {
                    friend_requests: n(0)?,
                    join_requests: n(1)?,
                    invitations: n(2)?,
                    notices: n(3)?,
                    unread: n(4)?,
                })
            })
        })
    }

    async fn keep_notice(&self, ocids: &[Ocid], body: &str, now: i64) -> Result<()> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        for ocid in ocids {
            sqlx::query("INSERT INTO pending_notices (ocid, body, created_at) VALUES (?, ?, ?)")
                .bind(ocid.sql())
                .bind(body)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn take_notices(&self, ocid: Ocid) -> Result<Vec<String>> {
        let _turn = self.writes.lock().await;
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let bodies: Vec<String> =
            sqlx::query_scalar("SELECT body FROM pending_notices WHERE ocid = ? ORDER BY id")
                .bind(ocid.sql())
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        if !bodies.is_empty() {
            sqlx::query("DELETE FROM pending_notices WHERE ocid = ?")
                .bind(ocid.sql())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(bodies)
    }
}
