//! HTTP tests against the real application on a random port. They run on a fresh SQLite
//! database per test, or on a fresh PostgreSQL schema per test when
//! `SWITCHBOARD_TEST_DATABASE_URL` names a server (the PostgreSQL leg of `.ci/run`).

mod audit;
mod binary;
mod bounce_pause;
mod browser;
mod channel_checks;
mod channel_health;
mod channels;
mod cli_channel;
mod delivery;
mod dkim;
#[path = "../support/dns_server.rs"]
mod dns_server;
mod domain_health;
mod domains;
mod errors;
#[path = "../support/fake_google.rs"]
mod fake_google;
#[path = "../support/fake_microsoft.rs"]
mod fake_microsoft;
mod gmail;
mod gmail_bulk;
mod health;
mod helpers;
mod interop;
mod interop_dkim;
mod interop_faults;
mod interop_windows;
mod isolation;
mod it_day;
mod messages;
mod microsoft;
mod openssl_certs;
mod pacing;
mod processes;
mod restart;
mod roles;
mod scheduling;
mod server_faults;
mod smtp_pool;
#[path = "../support/smtp_server.rs"]
mod smtp_server;
mod stats;
mod tenants;
mod tls_trust;
mod tokens;
mod ui_channel_actions;
mod ui_channels;
mod ui_client;
mod ui_domains;
mod ui_pacing;
mod ui_pages;
mod ui_people;
mod ui_session;
mod ui_suppressions;
mod unsubscribe;
mod vault;
#[path = "../support/webhook_receiver.rs"]
mod webhook_receiver;
mod webhooks_api;
