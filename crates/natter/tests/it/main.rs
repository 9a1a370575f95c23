//! The real `natter` binary, started as a process, in one test binary: health check, graceful
//! shutdown and restart ([`process`]), `natter bench` at a small size ([`bench`]), and
//! clusters of nodes on PostgreSQL and NATS ([`cluster`]). [`common`] starts the binary and
//! talks to it with natter-client.

mod admin;
mod backup;
mod bench;
mod cluster;
mod common;
mod crash;
mod files;
mod memory;
mod process;
#[path = "../../../natter-server/tests/it/common/services.rs"]
mod services;
mod startup;
mod tls;
mod web;
