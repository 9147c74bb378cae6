//! mxgate: an SMTP secure email gateway.
//!
//! # How a message flows
//! ```text
//! client --SMTP--> inbound::listen (connection limits)
//!                   └─ inbound::session::Session  (one file per verb: ehlo, mail, rcpt, data, misc)
//!                        parse: smtp::{command, data}  (pure, no I/O; dot-stuffing, smuggling guard)
//!                        end of DATA/BDAT: inbound::accept
//!                          ├─ Received header (inbound::received)
//!                          ├─ pipeline::Pipeline  (verdict before the 250; no backscatter)
//!                          │    parse once (pipeline::message) -> stages concurrently (pipeline::stages:
//!                          │    auth, dnsbl, uribl, attachment, phishing, heuristics; adapters clamav,
//!                          │    rspamd, spamassassin; pipeline::remote for stages on `mxgate worker`s)
//!                          │    -> pipeline::policy
//!                          │    -> reject/tempfail in the session, or pipeline::headers then hold/queue
//!                          └─ store::Store::enqueue  (fsynced, group commit)  --> 250 queued as ID
//! queue::Queue (scheduler) --due--> queue::deliver --> queue::pool/client --SMTP--> downstream
//!                                      ├─ queue::route   (per-domain next hop, MX via dns)
//!                                      └─ queue::dsn     (RFC 3464 bounce on permanent failure)
//! admin (HTTP: /healthz, /readyz, /api/v1/queue) <-- cli (`mxgate queue ...`)
//! ```
//!
//! With `[cluster]`, `store::Store` is `cluster::store::ClusterStore`: every
//! record goes to `write_quorum` storage nodes (`mxgate storage`,
//! `cluster::node`) over TLS, and the replication rules live in the pure
//! `cluster::core` (see `cluster` for its map).
//!
//! # Modules
//! - [`config`]: typed TOML + environment configuration, validated once.
//! - [`smtp`]: the protocol without I/O.
//! - [`inbound`]: the SMTP server.
//! - [`pipeline`]: scanning stages, the policy that turns their symbols into an action, verdict headers.
//! - [`store`]: the storage trait, the embedded backend and its conformance suite.
//! - [`cluster`]: storage nodes, the replication core and the cluster backend.
//! - [`queue`]: scheduling, delivery, routing, recipient verification, DSNs,
//!   and the after-queue stages (`queue::after`) before the first attempt.
//! - [`worker`]: `mxgate worker`, serving stages to gateways (protocol v1,
//!   `docs/worker-protocol.md`).
//! - [`admin`]: the admin HTTP API; [`cli`]: the command line that talks to it.
//! - [`server`]: starts and stops everything.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dns;
pub mod form;
pub mod inbound;
pub mod io;
pub mod pipeline;
pub mod quarantine;
pub mod queue;
pub mod server;
pub mod smtp;
pub mod store;
pub mod time;
pub mod tls;
pub mod worker;
