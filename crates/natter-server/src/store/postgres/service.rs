//! Service tokens and account UUIDs on PostgreSQL.

use super::{PgStore, check_invite, insert_account, use_invite};
use crate::store::rows::{self, ACCOUNT_COLUMNS, ACCOUNT_COLUMNS_A, AsSql, backend};
use crate::store::{Account, AccountRef, NewAccount, Ocid, Result, Services};
use async_trait::async_trait;

#[async_trait]
impl Services for PgStore {
    async fn server_key(&self, id: i64, candidate: &str) -> Result<String> {
        // Nodes starting together each offer a key; the first insert wins and all read it.
        sqlx::query(
            "INSERT INTO server_keys (id, value) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(candidate)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT value FROM server_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn create_service_account(
        &self,
        new: NewAccount,
        token_hash: &str,
        invite: Option<&[u8]>,
    ) -> Result<Account> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        if let Some(code_hash) = invite {
            check_invite(&mut tx, code_hash, new.created_at).await?;
        }
        let account = insert_account(&mut *tx, &new).await?;
        sqlx::query("INSERT INTO service_tokens (ocid, hash, created_at) VALUES ($1, $2, $3)")
            .bind(account.ocid.sql())
            .bind(token_hash)
            .bind(new.created_at)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if let Some(code_hash) = invite {
            use_invite(&mut tx, code_hash, account.ocid, new.created_at).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(account)
    }

    async fn set_service_token(&self, ocid: Ocid, token_hash: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_tokens (ocid, hash, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (ocid) DO UPDATE SET hash = excluded.hash, created_at = excluded.created_at",
        )
        .bind(ocid.sql())
        .bind(token_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn account_by_uuid(&self, uuid: &str) -> Result<Option<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE uuid = $1"
        ));
        let row = sqlx::query(sql)
            .bind(uuid)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::account).transpose().map_err(backend)
    }

    async fn account_by_service_token(&self, token_hash: &str) -> Result<Option<Account>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {ACCOUNT_COLUMNS_A} FROM service_tokens t
             JOIN accounts a ON a.ocid = t.ocid WHERE t.hash = $1"
        ));
        let row = sqlx::query(sql)
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.as_ref().map(rows::account).transpose().map_err(backend)
    }

    async fn service_token_hash(&self, ocid: Ocid) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT hash FROM service_tokens WHERE ocid = $1")
            .bind(ocid.sql())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn account_refs(&self, ocids: &[Ocid]) -> Result<Vec<AccountRef>> {
        if ocids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<i64> = ocids.iter().map(|o| o.sql()).collect();
        let rows: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT ocid, uuid, nickname FROM accounts WHERE ocid = ANY($1)")
                .bind(list)
                .fetch_all(&self.pool)
                .await
                .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(o, uuid, nickname)| AccountRef {
                ocid: Ocid(o as u64),
                uuid,
                nickname,
            })
            .collect())
    }
}
