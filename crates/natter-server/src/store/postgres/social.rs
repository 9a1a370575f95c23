//! The social traits on PostgreSQL: profiles, search, account security, remarks and blocks;
//! groups, join requests and invitations; read state and kept notices.
//!
//! Whatever must be seen whole runs in one transaction (a deletion, a block, a join, a transfer,
//! a disband). Rows a decision is read from are locked first, so that nodes racing on the same
//! account or group take turns: a transfer locks the two members' rows, a join holds its chat's
//! row against appends, a block locks the pair of accounts as friend requests do.

use super::{PgStore, lock_pair};
use crate::store::rows::{
    self, ACCOUNT_COLUMNS, AsSql, GROUP_SUMMARY_COLUMNS, MESSAGE_COLUMNS, StoreRow, backend,
};
use crate::store::{
    Account, ChatId, ChatState, GroupEdit, GroupSummary, Groups, Identity, Index, Invitation,
    JoinRequest, NewsCounts, Ocid, ProfileEdit, Profiles, ReadState, ResetState, Result, Revoke,
    Role, SearchBy, SessionInfo, StoreError,
};
use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgRow};

/// The column an identity is stored in, and its value.
fn identity_column(identity: &Identity) -> (&'static str, &str) {
    match identity {
        Identity::Email(v) => ("email", v),
        Identity::Phone(v) => ("phone", v),
        Identity::Username(v) => ("username", v),
    }
}

fn accounts(rows: &[PgRow]) -> Result<Vec<Account>> {
    rows.iter()
        .map(rows::account)
        .collect::<Result<_, _>>()
        .map_err(backend)
}

fn group_summaries(rows: &[PgRow], with_role: bool) -> Result<Vec<GroupSummary>> {
    rows.iter()
        .map(|r| rows::group_summary(r, with_role))
        .collect::<Result<_, _>>()
        .map_err(backend)
}

/// Revoke every session of `ocid` but `keep`, dropping their devices' marks; how many were.
async fn revoke_sessions(conn: &mut PgConnection, ocid: Ocid, keep: Option<&[u8]>) -> Result<u64> {
    let revoked: i64 = sqlx::query_scalar(
        "WITH revoked AS (
             UPDATE sessions SET revoked = TRUE
             WHERE ocid = $1 AND NOT revoked AND token_hash IS DISTINCT FROM $2
             RETURNING token_hash
         ), marks AS (
             DELETE FROM device_marks WHERE token_hash IN (SELECT token_hash FROM revoked)
         )
         SELECT COUNT(*) FROM revoked",
    )
    .bind(ocid.sql())
    .bind(keep)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(revoked as u64)
}

#[async_trait]
impl Profiles for PgStore {
    async fn update_profile(&self, ocid: Ocid, edit: &ProfileEdit, now: i64) -> Result<Account> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE accounts SET modified_at = $2,
                 nickname = COALESCE($3, nickname), avatar = COALESCE($4, avatar),
                 signature = COALESCE($5, signature), description = COALESCE($6, description),
                 sex = COALESCE($7, sex), status_text = COALESCE($8, status_text),
                 username = CASE WHEN $9 THEN $10 ELSE username END,
                 phone = CASE WHEN $11 THEN $12 ELSE phone END
             WHERE ocid = $1 AND deleted_at IS NULL RETURNING {ACCOUNT_COLUMNS}"
        )))
        .bind(ocid.sql())
        .bind(now)
        .bind(&edit.nickname)
        .bind(&edit.avatar)
        .bind(&edit.signature)
        .bind(&edit.description)
        .bind(edit.sex.map(i64::from))
        .bind(&edit.status_text)
        .bind(edit.username.is_some())
        .bind(edit.username.as_ref().and_then(Option::as_deref))
        .bind(edit.phone.is_some())
        .bind(edit.phone.as_ref().and_then(Option::as_deref))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?
        .ok_or_else(|| StoreError::Backend(format!("no account {ocid} to update")))?;
        rows::account(&row).map_err(backend)
    }

    async fn account_by(&self, identity: &Identity) -> Result<Option<Account>> {
        let (column, value) = identity_column(identity);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {column} = $1 AND deleted_at IS NULL"
        )))
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
        let clause = match by {
            SearchBy::Ocid(_) => "ocid = $1".to_owned(),
            SearchBy::Identity(id) => format!("{} = $1", identity_column(id).0),
            // A prefix test, not a range: under a linguistic collation, strings that start
            // with a prefix need not sort next to it.
            SearchBy::NicknamePrefix(_) => "starts_with(lower(nickname), lower($1))".to_owned(),
        };
        let query = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE {clause} AND ocid > $2
             AND deleted_at IS NULL ORDER BY ocid LIMIT $3"
        )));
        let query = match by {
            SearchBy::Ocid(o) => query.bind(o.sql()),
            SearchBy::Identity(id) => query.bind(identity_column(id).1),
            SearchBy::NicknamePrefix(p) => query.bind(p.as_str()),
        };
        let rows = query
            .bind(after.sql())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        accounts(&rows)
    }

    async fn set_password(
        &self,
        ocid: Ocid,
        password_hash: &str,
        revoke: Revoke<'_>,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("UPDATE accounts SET password_hash = $1 WHERE ocid = $2")
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
        sqlx::query(
            "UPDATE accounts SET security_question = $1, security_answer_hash = $2,
             reset_failures = 0, reset_blocked_until = 0 WHERE ocid = $3",
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
        let row: Option<(Option<String>, Option<String>, i64, i64)> = sqlx::query_as(
            "SELECT security_question, security_answer_hash, reset_failures, reset_blocked_until
             FROM accounts WHERE ocid = $1 AND deleted_at IS NULL",
        )
        .bind(ocid.sql())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(
            |(question, answer_hash, failures, blocked_until)| ResetState {
                question,
                answer_hash,
                failures: failures as u32,
                blocked_until,
            },
        ))
    }

    async fn set_reset_failures(
        &self,
        ocid: Ocid,
        failures: u32,
        blocked_until: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET reset_failures = $1, reset_blocked_until = $2 WHERE ocid = $3",
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
        sqlx::query_scalar(
            "UPDATE accounts SET
             reset_failures = CASE WHEN reset_failures + 1 >= $1 THEN 0
                              ELSE reset_failures + 1 END,
             reset_blocked_until = CASE WHEN reset_failures + 1 >= $1 THEN $2
                                   ELSE reset_blocked_until END
             WHERE ocid = $3 AND reset_blocked_until <= $4 AND deleted_at IS NULL
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
             WHERE ocid = $1 AND NOT revoked AND expires_at > $2 ORDER BY created_at, token_hash",
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // Updating the row first locks it: a friend request or block racing in on another node
        // (which locks both accounts' rows) runs wholly before or after the deletion.
        sqlx::query(
            "UPDATE accounts SET email = NULL, phone = NULL, username = NULL, password_hash = '',
             nickname = '', avatar = '', signature = '', description = '', status_text = '',
             security_question = NULL, security_answer_hash = NULL, deleted_at = $2,
             modified_at = $2 WHERE ocid = $1",
        )
        .bind(ocid.sql())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        revoke_sessions(&mut tx, ocid, None).await?;
        for sql in [
            "DELETE FROM friends WHERE ocid = $1 OR friend = $1",
            "DELETE FROM friend_requests WHERE from_ocid = $1 OR to_ocid = $1",
            "DELETE FROM blocks WHERE ocid = $1 OR blocked = $1",
            "DELETE FROM join_requests WHERE ocid = $1",
            "DELETE FROM invitations WHERE ocid = $1 OR by_ocid = $1",
            "DELETE FROM pending_notices WHERE ocid = $1",
            "DELETE FROM service_tokens WHERE ocid = $1",
            "DELETE FROM account_settings WHERE ocid = $1",
        ] {
            sqlx::query(sql)
                .bind(ocid.sql())
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn set_remark(&self, ocid: Ocid, friend: Ocid, remark: &str) -> Result<bool> {
        let changed = sqlx::query("UPDATE friends SET remark = $1 WHERE ocid = $2 AND friend = $3")
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
        let (a, b) = (ocid.sql(), other.sql());
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The pair's lock, as friend requests take it: a request or an answer racing in on
        // another node cannot bring back what the block ends.
        lock_pair(&mut tx, a, b).await?;
        sqlx::query(
            "INSERT INTO blocks (ocid, blocked, since) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(a)
        .bind(b)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        for sql in [
            "DELETE FROM friends WHERE (ocid = $1 AND friend = $2) OR (ocid = $2 AND friend = $1)",
            "DELETE FROM friend_requests WHERE (from_ocid = $1 AND to_ocid = $2)
             OR (from_ocid = $2 AND to_ocid = $1)",
        ] {
            sqlx::query(sql)
                .bind(a)
                .bind(b)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn unblock(&self, ocid: Ocid, other: Ocid) -> Result<bool> {
        let gone = sqlx::query("DELETE FROM blocks WHERE ocid = $1 AND blocked = $2")
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
            sqlx::query_scalar("SELECT blocked FROM blocks WHERE ocid = $1 ORDER BY blocked")
                .bind(ocid.sql())
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows.into_iter().map(|o| Ocid(o as u64)).collect())
    }

    async fn blocks(&self, blocker: Ocid, other: Ocid) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blocks WHERE ocid = $1 AND blocked = $2)")
            .bind(blocker.sql())
            .bind(other.sql())
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }
    async fn group_adds(&self, ocid: Ocid) -> Result<Option<u8>> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT group_adds FROM account_settings WHERE ocid = $1")
                .bind(ocid.sql())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(found.map(|v| v.clamp(0, 255) as u8))
    }

    async fn set_group_adds(&self, ocid: Ocid, value: u8) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_settings (ocid, group_adds) VALUES ($1, $2)
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
impl Groups for PgStore {
    async fn update_group(&self, chat: ChatId, edit: &GroupEdit) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE chats SET name = COALESCE($2, name), description = COALESCE($3, description),
             avatar = COALESCE($4, avatar), join_mode = COALESCE($5, join_mode)
             WHERE id = $1 AND kind = 1 AND disbanded_at IS NULL",
        )
        .bind(chat.sql())
        .bind(&edit.name)
        .bind(&edit.description)
        .bind(&edit.avatar)
        .bind(edit.join_mode.map(|m| m.code()))
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
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // FOR SHARE holds appends off the chat until the member is in: it joins exactly at the
        // index it is given, and is sent everything after it. Joins do not wait on each other.
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT last_index FROM chats WHERE id = $1 AND disbanded_at IS NULL FOR SHARE",
        )
        .bind(chat.sql())
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(last) = last else {
            return Err(StoreError::NoSuchChat);
        };
        let added = sqlx::query(
            "INSERT INTO members (chat_id, ocid, role, joined_index, delivered_index, read_index,
             joined_at) VALUES ($1, $2, $3, $4, $4, $4, $5) ON CONFLICT DO NOTHING",
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
            "DELETE FROM join_requests WHERE chat_id = $1 AND ocid = $2",
            "DELETE FROM invitations WHERE chat_id = $1 AND ocid = $2",
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
        let gone = sqlx::query("DELETE FROM members WHERE chat_id = $1 AND ocid = $2")
            .bind(chat.sql())
            .bind(ocid.sql())
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(gone > 0)
    }

    async fn set_role(&self, chat: ChatId, ocid: Ocid, role: Role) -> Result<bool> {
        let changed = sqlx::query("UPDATE members SET role = $1 WHERE chat_id = $2 AND ocid = $3")
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
        if from == to {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The chat's row first, as a disband takes it (the other order could deadlock with
        // one), then both members' rows, lowest ocid first, against a removal or a role change:
        // a second transfer waits and then reads the roles this one leaves.
        let group: Option<i64> =
            sqlx::query_scalar("SELECT id FROM chats WHERE id = $1 FOR NO KEY UPDATE")
                .bind(chat.sql())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if group.is_none() {
            return Ok(false);
        }
        let roles: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT ocid, role FROM members WHERE chat_id = $1 AND ocid IN ($2, $3)
             ORDER BY ocid FOR UPDATE",
        )
        .bind(chat.sql())
        .bind(from.sql())
        .bind(to.sql())
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let role_of = |o: Ocid| roles.iter().find(|(x, _)| *x == o.sql()).map(|(_, r)| *r);
        if role_of(from) != Some(Role::Owner.code()) || role_of(to).is_none() {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE members SET role = CASE WHEN ocid = $2 THEN $4 ELSE $5 END
             WHERE chat_id = $1 AND ocid IN ($2, $3)",
        )
        .bind(chat.sql())
        .bind(from.sql())
        .bind(to.sql())
        .bind(Role::Admin.code())
        .bind(Role::Owner.code())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query("UPDATE chats SET owner = $1 WHERE id = $2")
            .bind(to.sql())
            .bind(chat.sql())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn disband(&self, chat: ChatId, now: i64) -> Result<bool> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        // The chat's row stays locked to the end: a join waiting on it then finds the group
        // disbanded, and a second disband finds nothing to do.
        let marked = sqlx::query(
            "UPDATE chats SET disbanded_at = $1 WHERE id = $2 AND kind = 1 AND disbanded_at IS NULL",
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
            "DELETE FROM members WHERE chat_id = $1",
            "DELETE FROM join_requests WHERE chat_id = $1",
            "DELETE FROM invitations WHERE chat_id = $1",
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
        sqlx::query(
            "INSERT INTO join_requests (chat_id, ocid, message, created_at) VALUES ($1, $2, $3, $4)
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
            "SELECT ocid, message, created_at FROM join_requests WHERE chat_id = $1
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
        let gone = sqlx::query("DELETE FROM join_requests WHERE chat_id = $1 AND ocid = $2")
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
             JOIN members m ON m.chat_id = j.chat_id AND m.ocid = $1 AND m.role IN ($2, $3)
             ORDER BY j.created_at, j.chat_id, j.ocid",
        )
        .bind(admin.sql())
        .bind(Role::Owner.code())
        .bind(Role::Admin.code())
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
        sqlx::query(
            "INSERT INTO invitations (chat_id, ocid, by_ocid, created_at) VALUES ($1, $2, $3, $4)
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
        let gone = sqlx::query("DELETE FROM invitations WHERE chat_id = $1 AND ocid = $2")
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
            "SELECT chat_id, by_ocid, created_at FROM invitations WHERE ocid = $1
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_SUMMARY_COLUMNS}, m.role FROM members m JOIN chats c ON c.id = m.chat_id
             WHERE m.ocid = $1 AND c.kind = 1 ORDER BY c.id"
        )))
        .bind(ocid.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        group_summaries(&rows, true)
    }

    async fn find_groups(
        &self,
        prefix: &str,
        after: ChatId,
        limit: u32,
    ) -> Result<Vec<GroupSummary>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_SUMMARY_COLUMNS} FROM chats c WHERE c.kind = 1 AND c.disbanded_at IS NULL
             AND starts_with(lower(c.name), lower($1)) AND c.id > $2 ORDER BY c.id LIMIT $3"
        )))
        .bind(prefix)
        .bind(after.sql())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        group_summaries(&rows, false)
    }
}

/// A `chat_states` row: the chat's state and its newest message's columns (null without one).
fn chat_state(row: &PgRow) -> Result<ChatState, sqlx::Error> {
    let last = match row.opt_int("id")? {
        Some(_) => Some(rows::message(row)?),
        None => None,
    };
    Ok(ChatState {
        chat: ChatId(row.int("chat")? as u64),
        last_index: Index(row.int("last_index")? as u64),
        last,
        read: Index(row.int("read_index")? as u64),
        unread: row.int("unread")? as u64,
    })
}

#[async_trait]
impl ReadState for PgStore {
    async fn mark_read(&self, ocid: Ocid, chat: ChatId, index: Index) -> Result<Option<Index>> {
        let read: Option<i64> = sqlx::query_scalar(
            "UPDATE members m SET read_index = GREATEST(m.read_index, LEAST($1, c.last_index))
             FROM chats c WHERE c.id = m.chat_id AND m.chat_id = $2 AND m.ocid = $3
             RETURNING m.read_index",
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT m.chat_id AS chat, m.read_index, c.last_index,
                    (SELECT COUNT(*) FROM (SELECT 1 FROM messages x WHERE x.chat_id = m.chat_id
                     AND x.idx > m.read_index AND x.sender <> m.ocid LIMIT 100) u) AS unread,
                    l.*
             FROM members m JOIN chats c ON c.id = m.chat_id
             LEFT JOIN LATERAL (
                 SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE chat_id = m.chat_id AND idx = c.last_index
             ) l ON TRUE
             WHERE m.ocid = $1"
        )))
        .bind(ocid.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(chat_state)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn keep_notice(&self, ocids: &[Ocid], body: &str, now: i64) -> Result<()> {
        let ocids: Vec<i64> = ocids.iter().map(|o| o.sql()).collect();
        sqlx::query(
            "INSERT INTO pending_notices (ocid, body, created_at)
             SELECT o, $2, $3 FROM unnest($1::bigint[]) WITH ORDINALITY AS t(o, n) ORDER BY n",
        )
        .bind(&ocids)
        .bind(body)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn news_counts(&self, ocid: Ocid) -> Result<NewsCounts> {
        let (friend_requests, join_requests, invitations, notices, unread): (
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT
             (SELECT COUNT(*) FROM friend_requests WHERE to_ocid = $1),
             (SELECT COUNT(*) FROM join_requests j JOIN members m ON m.chat_id = j.chat_id
              WHERE m.ocid = $1 AND m.role IN (1, 2)),
             (SELECT COUNT(*) FROM invitations WHERE ocid = $1),
             (SELECT COUNT(*) FROM pending_notices WHERE ocid = $1),
             (SELECT COALESCE(SUM((SELECT COUNT(*) FROM (SELECT 1 FROM messages x
               WHERE x.chat_id = m.chat_id AND x.idx > m.read_index AND x.sender <> m.ocid
               LIMIT 100) u)), 0)::BIGINT FROM members m WHERE m.ocid = $1)",
        )
        .bind(ocid.sql())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(NewsCounts {
            friend_requests: friend_requests as u64,
            join_requests: join_requests as u64,
            invitations: invitations as u64,
            notices: notices as u64,
            unread: unread as u64,
        })
    }

    async fn take_notices(&self, ocid: Ocid) -> Result<Vec<String>> {
        // One statement: a notice kept meanwhile is either taken here or left for next time.
        sqlx::query_scalar(
            "WITH taken AS (DELETE FROM pending_notices WHERE ocid = $1 RETURNING id, body)
             SELECT body FROM taken ORDER BY id",
        )
        .bind(ocid.sql())
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }
}
