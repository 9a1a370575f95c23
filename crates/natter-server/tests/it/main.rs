//! natter-server's integration tests, in one binary: a real server in-process per test (see
//! [`common`]), reached over the wire with natter-client.
//!
//! Most modules test one area through one dialect's exact frames. Behaviour every dialect has
//! (offline delivery, several devices, bad input, restarts, chats across dialects) is also
//! written once over [`driver::Dialect`] and instantiated for each dialect that can express
//! it. [`store`] calls the `Store` trait directly, against SQLite and PostgreSQL.

mod common;
mod driver;

mod accounts;
mod authz;
mod bad_input;
mod cluster;
mod concurrency;
mod consent;
mod devices;
mod dialects;
mod files;
mod friends;
mod groups;
mod hardening;
mod limits;
mod migration;
mod offline;
mod operations;
mod ourchat_clients;
mod pipe;
mod reads;
mod rest;
mod rest_social;
mod restart;
mod store;
mod svc;
mod tls;
mod v0;
mod v1;
mod web;
