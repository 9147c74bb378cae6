//! Loading: the TOML file, then `MXGATE_<SECTION>__<KEY>` environment
//! overrides, then validation. Every error names the file and the key.

use super::{Config, DownstreamTls, NodeConfig};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{}: key `{}`: {}", self.file.display(), k, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Reads, overrides from the environment and validates.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let cfg: Config = read(path, None)?;
    validate(&cfg).map_err(|(key, message)| ConfigError { file: path.to_owned(), key: Some(key.into()), message })?;
    Ok(cfg)
}

/// A storage node's file (`mxgate storage`), read the same way.
pub fn load_node(path: &Path) -> Result<NodeConfig, ConfigError> {
    // A storage node takes only its own sections from the environment: a
    // shell or host that also runs a gateway has MXGATE_SMTP__... set.
    let cfg: NodeConfig = read(path, Some(&["NODE", "STORAGE", "CLUSTER", "LOG"]))?;
    super::cluster::validate_node(&cfg).map_err(|(key, message)| ConfigError {
        file: path.to_owned(),
        key: Some(key.into()),
        message,
    })?;
    Ok(cfg)
}

/// A scanning worker's file (`mxgate worker`), read the same way.
pub fn load_worker(path: &Path) -> Result<super::WorkerConfig, ConfigError> {
    let cfg: super::WorkerConfig = read(path, Some(&["WORKER", "SCAN", "DNS", "LOG"]))?;
    super::worker::validate_worker(&cfg).map_err(|(key, message)| ConfigError {
        file: path.to_owned(),
        key: Some(key.into()),
        message,
    })?;
    Ok(cfg)
}

fn read<T: serde::de::DeserializeOwned>(path: &Path, sections: Option<&[&str]>) -> Result<T, ConfigError> {
    if !path.is_file() {
        let message = "cannot read the file (missing or not a regular file)".into();
        return Err(ConfigError { file: path.to_owned(), key: None, message });
    }
    // Only MXGATE_<SECTION>__<KEY> variables configure the gateway; others
    // with the prefix (MXGATE_ADMIN_URL for the CLI) are not config keys.
    let ours = |k: &str| {
        let section = k.strip_prefix("MXGATE_").and_then(|r| r.split("__").next()).unwrap_or("");
        sections.is_none_or(|s| s.contains(&section))
    };
    let vars: config::Map<String, String> =
        std::env::vars().filter(|(k, _)| k.starts_with("MXGATE_") && k.contains("__") && ours(k)).collect();
    let env = config::Environment::with_prefix("MXGATE")
        .source(Some(vars))
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("relay.domains")
        .with_list_parse_key("dns.nameservers")
        .with_list_parse_key("cluster.nodes");
    let built = config::Config::builder()
        .add_source(config::File::from(path).format(config::FileFormat::Toml))
        .add_source(env)
        .build()
        .map_err(|e| split_error(path, e))?;
    built.try_deserialize().map_err(|e| split_error(path, e))
}

/// Turns the config crate's error into ours, keeping the key it names.
fn split_error(path: &Path, e: config::ConfigError) -> ConfigError {
    let mut text = e.to_string();
    // The config crate appends the origin; we print the file first instead.
    if let Some(i) = text.rfind(" in ") {
        text.truncate(i);
    }
    // It words type errors as "... for key `a.b`".
    let mut key = text.split("for key `").nth(1).and_then(|r| r.split('`').next()).map(str::to_string);
    if let Some(k) = &key {
        text = text.replace(&format!(" for key `{k}`"), "");
    }
    // In an array of tables it writes `pipeline.stage[0]mode`.
    key = key.map(|k| k.replace("]", "].").replace("].[", "][").trim_end_matches('.').to_string());
    // Its wording for a bad enum value names no choices; serde's does.
    if let Some(v) = text.split("does not have variant constructor ").nth(1) {
        text = format!("`{v}` is not one of the allowed values");
    }
    // "missing configuration field \"a.b\"": a required key.
    if let Some(k) = text.strip_prefix("missing configuration field \"").and_then(|r| r.split('"').next()) {
        key = Some(k.to_string());
        text = "required, but missing".into();
    }
    // serde's "unknown field `x`" names the section; name the whole key.
    if let Some(field) = text.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
        let full = match &key {
            Some(k) => format!("{k}.{field}"),
            None => field.to_string(),
        };
        let rest = &text["unknown ".len()..];
        text = match full.contains('[') {
            // A table in an array has no environment variable.
            true => format!("unknown key; {rest}"),
            false => {
                let env = format!("MXGATE_{}", full.to_uppercase().replace('.', "__"));
                format!("unknown key (in the file, or from the environment as {env}); {rest}")
            }
        };
        key = Some(full);
    }
    ConfigError { file: path.to_owned(), key, message: text }
}

type Invalid = (&'static str, String);

fn validate(c: &Config) -> Result<(), Invalid> {
    if c.smtp.hostname.is_empty() || c.smtp.hostname.contains(char::is_whitespace) {
        return Err(("smtp.hostname", "must be a host name without spaces".into()));
    }
    positive("smtp.max_message_size", c.smtp.max_message_size)?;
    positive("smtp.max_recipients", c.smtp.max_recipients)?;
    positive("smtp.max_connections", c.smtp.max_connections)?;
    positive("smtp.max_connections_per_ip", c.smtp.max_connections_per_ip)?;
    if c.smtp.max_errors == 0 {
        return Err(("smtp.max_errors", "must be greater than 0".into()));
    }
    for (key, d) in [
        ("smtp.command_timeout", c.smtp.command_timeout),
        ("smtp.data_timeout", c.smtp.data_timeout),
        ("queue.delivery_timeout", c.queue.delivery_timeout),
        ("queue.max_lifetime", c.queue.max_lifetime),
    ] {
        if d.is_zero() {
            return Err((key, "must be longer than 0s".into()));
        }
    }
    if c.smtp.max_command_line < 512 {
        return Err(("smtp.max_command_line", "must be at least 512 (RFC 5321 4.5.3.1.4)".into()));
    }
    if c.smtp.max_line_length < 78 {
        return Err(("smtp.max_line_length", "must be at least 78".into()));
    }
    if c.relay.domains.is_empty() {
        return Err(("relay.domains", "must list at least one accepted domain".into()));
    }
    for d in &c.relay.domains {
        if crate::smtp::address::parse_domain(d).is_none() {
            return Err(("relay.domains", format!("`{d}` is not a domain name")));
        }
    }
    crate::queue::route::NextHop::parse(&c.relay.downstream).map_err(|e| ("relay.downstream", e))?;
    crate::queue::route::NextHop::parse(&c.relay.outbound).map_err(|e| ("relay.outbound", e))?;
    for v in c.relay.routes.values() {
        crate::queue::route::NextHop::parse(v).map_err(|e| ("relay.routes", e))?;
    }
    if c.relay.tls_ca.is_some() && c.relay.tls != DownstreamTls::Require {
        return Err(("relay.tls_ca", "only used with relay.tls = \"require\"".into()));
    }
    if let Some(tls) = &c.tls {
        readable("tls.cert", &tls.cert)?;
        readable("tls.key", &tls.key)?;
    }
    if let Some(ca) = &c.relay.tls_ca {
        readable("relay.tls_ca", ca)?;
    }
    positive("queue.delivery_workers", c.queue.delivery_workers)?;
    positive("queue.connections_per_route", c.queue.connections_per_route)?;
    if c.queue.retry_initial.is_zero() || c.queue.retry_max < c.queue.retry_initial {
        return Err(("queue.retry_max", "must be at least queue.retry_initial, which must be > 0".into()));
    }
    if !c.admin.listen.ip().is_loopback() && c.admin.token.as_deref().unwrap_or("").is_empty() {
        return Err(("admin.token", "required when admin.listen is not a loopback address".into()));
    }
    let q = &c.quarantine;
    if q.retention.is_zero() || q.sweep_interval.is_zero() || q.digest.interval.is_zero() || q.digest.link_ttl.is_zero()
    {
        return Err((
            "quarantine",
            "retention, sweep_interval, digest.interval and digest.link_ttl must be > 0".into(),
        ));
    }
    positive("quarantine.sweep_budget", q.sweep_budget)?;
    if let Some(base) = &q.digest.link_base
        && !(base.starts_with("http://") || base.starts_with("https://"))
    {
        return Err(("quarantine.digest.link_base", format!("`{base}` must start with http:// or https://")));
    }
    if q.digest.secret.as_deref().is_some_and(|s| s.len() < 16) {
        return Err(("quarantine.digest.secret", "must be at least 16 characters".into()));
    }
    if c.admin.password.as_deref().is_some_and(|p| p.len() < 8) {
        return Err(("admin.password", "must be at least 8 characters".into()));
    }
    if let Some(cl) = &c.cluster {
        super::cluster::validate(cl)?;
    }
    c.scan.validate()?;
    c.policy.validate()?;
    crate::pipeline::stage_def::validate(&c.pipeline.stage, &c.scan)?;
    // Each stage checks its own settings when it is built.
    crate::pipeline::stages::build(c).map_err(|e| match e.strip_prefix("pipeline.stage ") {
        Some(rest) => ("pipeline.stage", rest.to_string()),
        None => ("scan", e),
    })?;
    for ns in &c.dns.nameservers {
        crate::dns::parse_nameserver(ns).map_err(|e| ("dns.nameservers", e))?;
    }
    Ok(())
}

fn positive(key: &'static str, v: usize) -> Result<(), Invalid> {
    match v {
        0 => Err((key, "must be greater than 0".into())),
        _ => Ok(()),
    }
}

fn readable(key: &'static str, p: &Path) -> Result<(), Invalid> {
    std::fs::metadata(p).map(|_| ()).map_err(|e| (key, format!("cannot read {}: {e}", p.display())))
}
