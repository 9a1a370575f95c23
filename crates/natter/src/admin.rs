//! `natter admin`: an operator's commands on the store of a deployment (its data directory, or
//! its PostgreSQL URL), safe while servers run on it. Bans, deletions and revoked logins reach
//! the running servers through the store: each polls its account events and closes the
//! connections concerned (see docs/operations/guide.md).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use natter_server::Config;
use natter_server::domain::{Domain, DomainError};
use natter_server::store::{Account, ChatId, Ocid, status};
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The server's TOML config file: its `data_dir` and `store` are used.
    #[arg(long, env = "NATTER_CONFIG")]
    pub config: Option<PathBuf>,
    /// The data directory of a SQLite deployment [default: ./natter-data].
    #[arg(long, env = "NATTER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The `postgres://` URL of a PostgreSQL deployment.
    #[arg(long, env = "NATTER_STORE")]
    pub store: Option<String>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Accounts: list, show, create, ban, unban, delete, reset a password.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Logins (sessions, one per device): list and revoke.
    #[command(subcommand)]
    Logins(LoginsCommand),
    /// Single-use invitation codes for `--registration invite`.
    #[command(subcommand)]
    Invites(InvitesCommand),
    /// Groups: list, disband.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Counts of accounts, logins, chats, messages, friendships and invitations.
    Stats,
}

#[derive(Subcommand, Debug)]
pub enum AccountsCommand {
    /// One line per account: ocid, status, email, nickname, created (UTC).
    List {
        /// Only accounts with a higher ocid (for paging).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// One account, with its logins.
    Show { ocid: u64 },
    /// Create an account (whatever the registration mode); the password is read from the first
    /// line of standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Nickname [default: the email's local part].
        #[arg(long)]
        name: Option<String>,
    },
    /// Ban: the account can no longer log in or resume, and its live connections are closed.
    Ban { ocid: u64 },
    /// Lift a ban.
    Unban { ocid: u64 },
    /// Erase: email, password, logins and friendships go; the ocid and its messages stay.
    Delete { ocid: u64 },
    /// Set a new password, read from the first line of standard input. Logins stay: revoke
    /// them with `natter admin logins revoke OCID --all` if need be.
    ResetPassword { ocid: u64 },
}

#[derive(Subcommand, Debug)]
pub enum LoginsCommand {
    /// An account's live logins, oldest first: id, created, expires.
    List { ocid: u64 },
    /// Revoke one login by its id (or a prefix of it), or every login with `--all`; the
    /// connections using them are closed.
    Revoke {
        ocid: u64,
        /// Login ids are base64url, so one may start with `-`.
        #[arg(allow_hyphen_values = true)]
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum InvitesCommand {
    /// Make invitation codes (printed once; only their hashes are stored).
    Create {
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Hours each code stays valid [default: no limit].
        #[arg(long)]
        ttl_hours: Option<u64>,
    },
    /// Every invitation: id, created, expires, used by.
    List,
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// One line per live group: id, members, how it is joined, name.
    List {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 1000)]
        limit: u32,
    },
    /// End a group: announced in its history, and every member told at its next login (this
    /// command runs apart from the server, so connected members hear of it when they log in
    /// again). Within a minute (the server's cache of the group) nobody can post to it.
    Disband { id: u64 },
}

/// The store the flags (or the config file) name, as a server would open it.
///
/// # Errors
/// An unreadable config file.
pub fn store_config(
    config: Option<&PathBuf>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
) -> anyhow::Result<Config> {
    let mut args = crate::config::ServeArgs {
        config: config.cloned(),
        data_dir,
        store,
        ..Default::default()
    };
    if let Some(path) = config {
        let file = crate::config::ServeArgs::read_file(path)?;
        if args.data_dir.is_none() {
            args.data_dir = file.data_dir;
        }
        if args.store.is_none() {
            args.store = file.store;
        }
    }
    let mut server = Config::default();
    if let Some(d) = args.data_dir {
        server.data_dir = d;
    }
    server.store_url = args.store;
    server.store_pool = 2;
    Ok(server)
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let config = store_config(args.config.as_ref(), args.data_dir, args.store)?;
    let domain = natter_server::app::operator_domain(&config)
        .await
        .context("cannot open the store")?;
    let result = command(&domain, args.command).await;
    domain.close().await;
    result
}

async fn command(d: &Domain, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Accounts(c) => accounts(d, c).await,
        AdminCommand::Logins(LoginsCommand::List { ocid }) => print_logins(d, Ocid(ocid)).await,
        AdminCommand::Logins(LoginsCommand::Revoke { ocid, id, all }) => {
            if id.is_none() && !all {
                bail!(
                    "name the login to revoke (its id from `natter admin logins list`) or pass --all"
                );
            }
            let n = d
                .admin_revoke_logins(Ocid(ocid), id.as_deref())
                .await
                .map_err(|e| refused(e, ocid))?;
            if n == 0 {
                bail!("no live login of account {ocid} matches");
            }
            println!("revoked {n} login(s) of account {ocid}");
            Ok(())
        }
        AdminCommand::Invites(InvitesCommand::Create { count, ttl_hours }) => {
            let ttl = ttl_hours.map(|h| std::time::Duration::from_secs(h * 3600));
            for _ in 0..count.max(1) {
                println!("{}", d.create_invite(ttl).await.map_err(internal)?);
            }
            Ok(())
        }
        AdminCommand::Invites(InvitesCommand::List) => {
            println!("ID            CREATED               EXPIRES               USED_BY");
            for i in d.invites().await.map_err(internal)? {
                println!(
                    "{:<13} {:<21} {:<21} {}",
                    i.id,
                    time(i.created_at),
                    i.expires_at.map_or_else(|| "never".into(), time),
                    i.used_by.map_or_else(|| "-".into(), |o| o.to_string()),
                );
            }
            Ok(())
        }
        AdminCommand::Groups(GroupsCommand::List { after, limit }) => {
            println!("ID       MEMBERS  JOIN      NAME");
            for g in d
                .admin_groups(ChatId(after), limit)
                .await
                .map_err(internal)?
            {
                println!(
                    "{:<8} {:<8} {:<9} {}",
                    g.id,
                    g.member_count,
                    format!("{:?}", g.join_mode).to_lowercase(),
                    g.name
                );
            }
            Ok(())
        }
        AdminCommand::Groups(GroupsCommand::Disband { id }) => {
            d.admin_disband(ChatId(id)).await.map_err(|e| match e {
                DomainError::NoSuchGroup(_) => {
                    anyhow::anyhow!("no live group has id {id}")
                }
                e => internal(e),
            })?;
            println!("disbanded group {id}");
            Ok(())
        }
        AdminCommand::Stats => {
            let s = d.statistics().await.map_err(internal)?;
            for (name, value) in [
                ("accounts_active", s.accounts_active),
                ("accounts_banned", s.accounts_banned),
                ("accounts_deleted", s.accounts_deleted),
                ("logins_live", s.sessions_live),
                ("private_chats", s.private_chats),
                ("groups", s.groups),
                ("messages", s.messages),
                ("friendships", s.friendships),
                ("invites_unused", s.invites_unused),
            ] {
                println!("{name} {value}");
            }
            Ok(())
        }
    }
}

async fn accounts(d: &Domain, command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::List { after, limit } => {
            println!("OCID     STATUS   CREATED               EMAIL  NICKNAME");
            for a in d
                .admin_accounts(Ocid(after), limit)
                .await
                .map_err(internal)?
            {
                print_account_line(&a);
            }
            Ok(())
        }
        AccountsCommand::Show { ocid } => {
            let a = d.account(Ocid(ocid)).await.map_err(|e| refused(e, ocid))?;
            println!("ocid      {}", a.ocid);
            println!("status    {}", status_name(&a));
            println!("email     {}", a.email.as_deref().unwrap_or("-"));
            println!("nickname  {}", a.nickname);
            println!("created   {}", time(a.created_at));
            println!();
            print_logins(d, Ocid(ocid)).await
        }
        AccountsCommand::Create { email, name } => {
            let password = password_from_stdin()?;
            let a = d
                .admin_create_account(&email, &password, name.as_deref())
                .await
                .map_err(|e| refused(e, 0))?;
            println!(
                "created account {} ({})",
                a.ocid,
                email.trim().to_lowercase()
            );
            Ok(())
        }
        AccountsCommand::Ban { ocid } => {
            d.set_banned(Ocid(ocid), true)
                .await
                .map_err(|e| refused(e, ocid))?;
            println!("banned account {ocid}; its connections are being closed");
            Ok(())
        }
        AccountsCommand::Unban { ocid } => {
            d.set_banned(Ocid(ocid), false)
                .await
                .map_err(|e| refused(e, ocid))?;
            println!("unbanned account {ocid}");
            Ok(())
        }
        AccountsCommand::Delete { ocid } => {
            d.admin_delete_account(Ocid(ocid))
                .await
                .map_err(|e| refused(e, ocid))?;
            println!("deleted account {ocid}; its connections are being closed");
            Ok(())
        }
        AccountsCommand::ResetPassword { ocid } => {
            let password = password_from_stdin()?;
            d.admin_reset_password(Ocid(ocid), &password)
                .await
                .map_err(|e| refused(e, ocid))?;
            println!("new password set for account {ocid}");
            Ok(())
        }
    }
}

async fn print_logins(d: &Domain, ocid: Ocid) -> anyhow::Result<()> {
    let logins = d.admin_logins(ocid).await.map_err(|e| refused(e, ocid.0))?;
    println!("LOGIN             CREATED               EXPIRES");
    for l in logins {
        println!(
            "{:<17} {:<21} {}",
            l.id,
            time(l.created_at),
            time(l.expires_at)
        );
    }
    Ok(())
}

fn print_account_line(a: &Account) {
    println!(
        "{:<8} {:<8} {:<21} {}  {}",
        a.ocid,
        status_name(a),
        time(a.created_at),
        a.email.as_deref().unwrap_or("-"),
        a.nickname
    );
}

fn status_name(a: &Account) -> &'static str {
    match a.status {
        _ if a.deleted => "deleted",
        status::ACTIVE => "active",
        status::BANNED => "banned",
        _ => "unknown",
    }
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The first line of standard input (a password is never taken from the command line, where
/// other users and the shell's history see it).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (pipe it in: `echo \"$PW\" | natter admin ...`)");
    }
    Ok(password)
}

fn refused(e: DomainError, ocid: u64) -> anyhow::Error {
    match e {
        DomainError::NoSuchAccount(_) => anyhow::anyhow!("no account {ocid}"),
        DomainError::Internal => internal(e),
        other => anyhow::anyhow!("{other}"),
    }
}

fn internal(e: DomainError) -> anyhow::Error {
    anyhow::anyhow!("the store failed ({e}); see the log above")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        admin: AdminArgs,
    }

    #[test]
    fn a_login_id_may_start_with_a_hyphen() {
        let cli = Cli::try_parse_from(["natter", "logins", "revoke", "10001", "-cAj-m0kN0YUsmjb"])
            .expect("parses");
        match cli.admin.command {
            AdminCommand::Logins(LoginsCommand::Revoke { ocid, id, all }) => {
                assert_eq!(
                    (ocid, id.as_deref(), all),
                    (10001, Some("-cAj-m0kN0YUsmjb"), false)
                );
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(super::time(0), "1970-01-01 00:00:00");
        assert_eq!(super::time(1_700_000_000_000), "2023-11-14 22:13:20");
        assert_eq!(super::time(951_782_400_000), "2000-02-29 00:00:00");
    }
}
