//! `Files` on PostgreSQL: upload and file metadata.

use super::PgStore;
use crate::store::files::{File, Files, Unreferenced, Upload};
use crate::store::rows::{self, AsSql, FILE_COLUMNS, UNREFERENCED, UPLOAD_COLUMNS, backend};
use crate::store::{ChatId, Ocid, Result};
use async_trait::async_trait;

#[async_trait]
impl Files for PgStore {
    async fn create_upload(&self, u: &Upload, quota: u64) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO uploads (id, owner, name, mime, length, metadata, created_at, expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE (SELECT COALESCE(SUM(size), 0) FROM files WHERE owner = $2)
                 + (SELECT COALESCE(SUM(length), 0) FROM uploads WHERE owner = $2) + $5 <= $9",
        )
        .bind(&u.id)
        .bind(u.owner.sql())
        .bind(&u.name)
        .bind(&u.mime)
        .bind(u.length as i64)
        .bind(&u.metadata)
        .bind(u.created_at)
        .bind(u.expires_at)
        .bind(i64::try_from(quota).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn upload(&self, id: &str) -> Result<Option<Upload>> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| rows::upload(&r))
            .transpose()
            .map_err(backend)
    }

    async fn touch_upload(&self, id: &str, expires_at: i64) -> Result<()> {
        sqlx::query("UPDATE uploads SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn finish_upload(&self, f: &File) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(&f.id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO files (id, owner, name, size, mime, sha256, width, height, public, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&f.id)
        .bind(f.owner.sql())
        .bind(&f.name)
        .bind(f.size as i64)
        .bind(&f.mime)
        .bind(&f.sha256)
        .bind(f.width.map(i64::from))
        .bind(f.height.map(i64::from))
        .bind(i64::from(f.public))
        .bind(f.created_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM uploads WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn expired_uploads(&self, now: i64, limit: u32) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT id FROM uploads WHERE expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)
    }

    async fn bytes_used(&self, owner: Ocid) -> Result<u64> {
        let used: i64 = sqlx::query_scalar(
            "SELECT ((SELECT COALESCE(SUM(size), 0) FROM files WHERE owner = $1)
                  + (SELECT COALESCE(SUM(length), 0) FROM uploads WHERE owner = $1))::BIGINT",
        )
        .bind(owner.sql())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(used.max(0) as u64)
    }

    async fn file(&self, id: &str) -> Result<Option<File>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .map(|r| rows::file(&r))
            .transpose()
            .map_err(backend)
    }

    async fn share_file(&self, id: &str, chat: ChatId) -> Result<()> {
        sqlx::query(
            "INSERT INTO file_refs (file_seq, chat_id)
             SELECT seq, $1 FROM files WHERE id = $2 ON CONFLICT DO NOTHING",
        )
        .bind(chat.sql())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn file_shared_with(&self, id: &str, ocid: Ocid) -> Result<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT f.seq FROM files f
             JOIN file_refs r ON r.file_seq = f.seq
             JOIN members m ON m.chat_id = r.chat_id AND m.ocid = $1
             WHERE f.id = $2 LIMIT 1",
        )
        .bind(ocid.sql())
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(found.is_some())
    }

    async fn publish_file(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE files SET public = 1 WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn unreferenced_files(&self, before: i64, limit: u32) -> Result<Vec<Unreferenced>> {
        let sql = format!(
            "SELECT f.id, f.sha256 FROM files f WHERE f.created_at < $1 AND {UNREFERENCED}
             ORDER BY f.created_at LIMIT $2"
        );
        let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(id, sha256)| Unreferenced { id, sha256 })
            .collect())
    }

    async fn delete_file(&self, id: &str, before: i64) -> Result<(bool, bool)> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let sql = format!(
            "DELETE FROM files f WHERE f.id = $1 AND f.created_at < $2 AND {UNREFERENCED}
             RETURNING sha256"
        );
        let sha: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(before)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(sha) = sha else {
            return Ok((false, false));
        };
        let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE sha256 = $1")
            .bind(&sha)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok((true, others == 0))
    }

    async fn server_key(&self, name: &str) -> Result<Vec<u8>> {
        if let Some(key) = sqlx::query_scalar("SELECT secret FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
        {
            return Ok(key);
        }
        let fresh: [u8; 32] = rand::random();
        sqlx::query(
            "INSERT INTO server_keys (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(fresh.as_slice())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT secret FROM server_keys WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }
}
