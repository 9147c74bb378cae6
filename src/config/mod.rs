//! Typed configuration. Every field is documented where it is declared; the
//! defaults live here and nowhere else. Unknown keys are rejected
//! (`deny_unknown_fields`), never silently ignored.

mod cluster;
mod load;
mod worker;

pub use cluster::{Cluster, Node, NodeConfig};
pub use load::{ConfigError, load, load_node, load_worker};
pub use worker::{Worker, WorkerConfig};

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub smtp: Smtp,
    #[serde(default)]
    pub tls: Option<Tls>,
    pub relay: Relay,
    #[serde(default)]
    pub queue: Queue,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub dns: Dns,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub scan: crate::pipeline::ScanConfig,
    #[serde(default)]
    pub policy: crate::pipeline::PolicyConfig,
    /// `[[pipeline.stage]]`: remote workers, outside scanners, after-queue stages.
    #[serde(default)]
    pub pipeline: crate::pipeline::PipelineConfig,
    #[serde(default)]
    pub quarantine: Quarantine,
    /// Absent: single node, the embedded store. Present: the storage cluster.
    #[serde(default)]
    pub cluster: Option<Cluster>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    /// Address and port the SMTP listener binds.
    pub listen: SocketAddr,
    /// Name used in the greeting, EHLO reply, Received headers and DSNs.
    pub hostname: String,
    /// Largest message accepted, in octets; announced with SIZE (RFC 1870).
    pub max_message_size: usize,
    /// Recipients per message; past it RCPT gets 452 4.5.3 (RFC 5321 §4.5.3.1.8).
    pub max_recipients: usize,
    /// Concurrent SMTP connections in total; past it 421 4.7.0.
    pub max_connections: usize,
    /// Concurrent SMTP connections from one client IP; past it 421 4.7.0.
    pub max_connections_per_ip: usize,
    /// Longest command line, in octets without CRLF (RFC 5321 §4.5.3.1.4 says
    /// 512 with CRLF; ESMTP parameters make real lines longer).
    pub max_command_line: usize,
    /// Longest line of message text, without CRLF (RFC 5322 §2.1.1: 998).
    pub max_line_length: usize,
    /// Largest header section, in octets.
    pub max_header_size: usize,
    /// Protocol errors tolerated in one session before 421 and disconnect.
    pub max_errors: u32,
    /// Idle time allowed while waiting for a command (RFC 5321 §4.5.3.2.7: 5 min).
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Idle time allowed between blocks of message data (RFC 5321 §4.5.3.2.6: 3 min).
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Slowest average transfer accepted for message data, in octets per
    /// second, enforced once `min_data_rate_after` has passed in DATA/BDAT.
    pub min_data_rate: u64,
    /// Time a transfer runs before `min_data_rate` applies.
    #[serde(with = "humantime_serde")]
    pub min_data_rate_after: Duration,
    /// Time given to sessions to finish on shutdown before they are cut.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            listen: "127.0.0.1:2525".parse().unwrap(),
            hostname: "localhost".into(),
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 1000,
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_command_line: 2048,
            max_line_length: 998,
            max_header_size: 102_400,
            max_errors: 20,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(300),
            min_data_rate: 500,
            min_data_rate_after: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain offered with STARTTLS.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DownstreamTls {
    /// Never use STARTTLS towards the next hop.
    None,
    /// Use STARTTLS when offered; do not verify the certificate.
    Opportunistic,
    /// Require STARTTLS and a certificate valid for the next hop's name.
    Require,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relay {
    /// Recipient domains accepted; RCPT to any other domain gets 550 5.7.1.
    pub domains: Vec<String>,
    /// Default next hop for the accepted domains, `host:port`.
    pub downstream: String,
    /// Probe the next hop with RCPT before accepting a recipient.
    #[serde(default)]
    pub verify_recipients: bool,
    /// How long a recipient the next hop accepted is remembered.
    #[serde(default = "defaults::verify_positive_ttl", with = "humantime_serde")]
    pub verify_positive_ttl: Duration,
    /// How long a recipient the next hop refused is remembered.
    #[serde(default = "defaults::verify_negative_ttl", with = "humantime_serde")]
    pub verify_negative_ttl: Duration,
    /// Per-domain next hop: `host:port`, or `"mx"` for an MX lookup.
    #[serde(default)]
    pub routes: BTreeMap<String, String>,
    /// Next hop for any other domain (only DSNs go there): `"mx"` or `host:port`.
    #[serde(default = "defaults::outbound")]
    pub outbound: String,
    /// STARTTLS towards next hops: none, opportunistic or require.
    #[serde(default = "defaults::downstream_tls")]
    pub tls: DownstreamTls,
    /// Extra PEM CA certificates trusted when `tls = "require"`.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// How long a message may wait before it expires and bounces (Postfix: 5d).
    #[serde(with = "humantime_serde")]
    pub max_lifetime: Duration,
    /// First retry delay; doubles on each failure up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Messages delivered at once, in total.
    pub delivery_workers: usize,
    /// Connections open at once to one next hop.
    pub connections_per_route: usize,
    /// How long an idle connection to a next hop is kept for reuse.
    #[serde(with = "humantime_serde")]
    pub connection_idle: Duration,
    /// Time allowed for a whole delivery attempt to one next hop.
    #[serde(with = "humantime_serde")]
    pub delivery_timeout: Duration,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            max_lifetime: Duration::from_secs(5 * 86400),
            retry_initial: Duration::from_secs(300),
            retry_max: Duration::from_secs(4000),
            delivery_workers: 64,
            connections_per_route: 20,
            connection_idle: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Directory for the queue index (sled) and the message spool.
    pub path: PathBuf,
    /// Free space, in octets, kept on the storage filesystem: below it new
    /// mail gets 452 4.3.1, so queued mail can still be delivered and
    /// removed (the index needs room to record that).
    pub min_free: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage { path: "./data".into(), min_free: 100 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// HTTP listener for health and the queue API used by the CLI.
    pub listen: SocketAddr,
    /// Bearer token the API requires; without one, the admin listener must be
    /// on a loopback address. Also accepted as a web console login.
    pub token: Option<String>,
    /// Web console password for the user `admin` (besides the token).
    pub password: Option<String>,
    /// How long a web console login lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            listen: "127.0.0.1:8025".parse().unwrap(),
            token: None,
            password: None,
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quarantine {
    /// How long a quarantined message is kept; then the expiry sweep drops
    /// its body and marks its record `expired`.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often the expiry sweep runs.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Most records one sweep handles; the next run continues.
    pub sweep_budget: usize,
    pub digest: Digest,
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine {
            retention: Duration::from_secs(30 * 86400),
            sweep_interval: Duration::from_secs(600),
            sweep_budget: 10_000,
            digest: Digest::default(),
        }
    }
}

/// Per-recipient quarantine digests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Digest {
    pub enabled: bool,
    /// Time between digests; each lists what was held since the last one.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Base URL of the admin listener as recipients reach it (through a
    /// reverse proxy, usually); links are `<link_base>/digest/...`.
    /// Default: `http://<admin.listen>`.
    pub link_base: Option<String>,
    /// How long a digest's links work.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
    /// Sender of digests; default `quarantine@<smtp.hostname>`.
    pub from: Option<String>,
    /// Key that signs the links (HMAC-SHA256); default: a random key kept in
    /// the store, so links survive restarts.
    pub secret: Option<String>,
}

impl Default for Digest {
    fn default() -> Self {
        Digest {
            enabled: true,
            interval: Duration::from_secs(86400),
            link_base: None,
            link_ttl: Duration::from_secs(7 * 86400),
            from: None,
            secret: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Dns {
    /// Nameservers as `ip:port` (port 53 when omitted); empty = resolv.conf.
    pub nameservers: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// `text` or `json` (one JSON object per line).
    pub format: LogFormat,
    /// A tracing filter such as `info` or `mxgate=debug`; `RUST_LOG` overrides.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log { format: LogFormat::Text, level: "info".into() }
    }
}

mod defaults {
    use super::DownstreamTls;
    use std::time::Duration;

    pub fn verify_positive_ttl() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn verify_negative_ttl() -> Duration {
        Duration::from_secs(300)
    }
    pub fn outbound() -> String {
        "mx".into()
    }
    pub fn downstream_tls() -> DownstreamTls {
        DownstreamTls::Opportunistic
    }
}
