//! natter-server's integration tests, in one binary: a real server in-process per test (see
//! [`common`]), reached over the wire with natter-client. Each module tests one area;
//! [`store`] calls the `Store` trait directly, against SQLite and PostgreSQL.

mod common;

mod bad_input;
mod cluster;
mod concurrency;
mod friends;
mod offline;
mod restart;
mod store;
mod v0;
mod v1;
