//! The social traits on PostgreSQL.

use super::PgStore;
use crate::store::{
    Account, ChatId, ChatState, GroupEdit, GroupSummary, Groups, Identity, Index, Invitation,
    JoinRequest, Ocid, ProfileEdit, Profiles, ReadState, ResetState, Result, Revoke, Role,
    SearchBy, SessionInfo, StoreError,
};
use async_trait::async_trait;

fn todo() -> StoreError {
    StoreError::Backend("not yet on PostgreSQL".into())
}

#[async_trait]
impl Profiles for PgStore {
    async fn update_profile(&self, _: Ocid, _: &ProfileEdit, _: i64) -> Result<Account> {
        Err(todo())
    }
    async fn account_by(&self, _: &Identity) -> Result<Option<Account>> {
        Err(todo())
    }
    async fn search_accounts(&self, _: &SearchBy, _: Ocid, _: u32) -> Result<Vec<Account>> {
        Err(todo())
    }
    async fn set_password(&self, _: Ocid, _: &str, _: Revoke<'_>) -> Result<u64> {
        Err(todo())
    }
    async fn set_security(&self, _: Ocid, _: &str, _: &str) -> Result<()> {
        Err(todo())
    }
    async fn reset_state(&self, _: Ocid) -> Result<Option<ResetState>> {
        Err(todo())
    }
    async fn set_reset_failures(&self, _: Ocid, _: u32, _: i64) -> Result<()> {
        Err(todo())
    }
    async fn sessions_of(&self, _: Ocid, _: i64) -> Result<Vec<SessionInfo>> {
        Err(todo())
    }
    async fn delete_account(&self, _: Ocid, _: i64) -> Result<()> {
        Err(todo())
    }
    async fn set_remark(&self, _: Ocid, _: Ocid, _: &str) -> Result<bool> {
        Err(todo())
    }
    async fn block(&self, _: Ocid, _: Ocid, _: i64) -> Result<()> {
        Err(todo())
    }
    async fn unblock(&self, _: Ocid, _: Ocid) -> Result<bool> {
        Err(todo())
    }
    async fn blocked(&self, _: Ocid) -> Result<Vec<Ocid>> {
        Err(todo())
    }
    async fn blocks(&self, _: Ocid, _: Ocid) -> Result<bool> {
        Err(todo())
    }
}

#[async_trait]
impl Groups for PgStore {
    async fn update_group(&self, _: ChatId, _: &GroupEdit) -> Result<bool> {
        Err(todo())
    }
    async fn add_member(&self, _: ChatId, _: Ocid, _: Role, _: i64) -> Result<Option<Index>> {
        Err(todo())
    }
    async fn remove_member(&self, _: ChatId, _: Ocid) -> Result<bool> {
        Err(todo())
    }
    async fn set_role(&self, _: ChatId, _: Ocid, _: Role) -> Result<bool> {
        Err(todo())
    }
    async fn transfer_group(&self, _: ChatId, _: Ocid, _: Ocid) -> Result<bool> {
        Err(todo())
    }
    async fn disband(&self, _: ChatId, _: i64) -> Result<bool> {
        Err(todo())
    }
    async fn request_join(&self, _: ChatId, _: Ocid, _: &str, _: i64) -> Result<()> {
        Err(todo())
    }
    async fn join_requests(&self, _: ChatId) -> Result<Vec<JoinRequest>> {
        Err(todo())
    }
    async fn take_join_request(&self, _: ChatId, _: Ocid) -> Result<bool> {
        Err(todo())
    }
    async fn join_requests_for(&self, _: Ocid) -> Result<Vec<JoinRequest>> {
        Err(todo())
    }
    async fn invite(&self, _: ChatId, _: Ocid, _: Ocid, _: i64) -> Result<()> {
        Err(todo())
    }
    async fn take_invitation(&self, _: ChatId, _: Ocid) -> Result<bool> {
        Err(todo())
    }
    async fn invitations(&self, _: Ocid) -> Result<Vec<Invitation>> {
        Err(todo())
    }
    async fn groups_of(&self, _: Ocid) -> Result<Vec<GroupSummary>> {
        Err(todo())
    }
    async fn find_groups(&self, _: &str, _: ChatId, _: u32) -> Result<Vec<GroupSummary>> {
        Err(todo())
    }
}

#[async_trait]
impl ReadState for PgStore {
    async fn mark_read(&self, _: Ocid, _: ChatId, _: Index) -> Result<Option<Index>> {
        Err(todo())
    }
    async fn chat_states(&self, _: Ocid) -> Result<Vec<ChatState>> {
        Err(todo())
    }
    async fn keep_notice(&self, _: Ocid, _: &str, _: i64) -> Result<()> {
        Err(todo())
    }
    async fn take_notices(&self, _: Ocid) -> Result<Vec<String>> {
        Err(todo())
    }
}
