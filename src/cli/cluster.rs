//! `mxgate cluster status` against the admin API.

use super::queue::{json_call, resolve, s};
use super::{ClusterAction, Target};
use serde_json::Value;

pub async fn run(action: ClusterAction, target: Target) -> Result<(), String> {
    let ClusterAction::Status = action;
    let (url, token) = resolve(&target)?;
    let v = json_call(&url, "GET", "/api/v1/cluster", token.as_deref()).await?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
    println!(
        "gateway {}: replicas {}, write_quorum {}, {} of {} nodes writable, {}",
        s(&v["gateway"]),
        s(&v["replicas"]),
        s(&v["write_quorum"]),
        s(&v["writable"]),
        nodes.len(),
        if v["accepting_mail"] == Value::Bool(true) { "accepting mail" } else { "NOT accepting mail (451)" }
    );
    println!("{:<24} {:<12} {:>9} {:>6} {:>8} {:>8}  ERROR", "NODE", "STATE", "RECORDS", "LOAD", "RTT_MS", "BEHIND");
    for n in nodes {
        println!(
            "{:<24} {:<12} {:>9} {:>6} {:>8} {:>8}  {}",
            s(&n["address"]),
            s(&n["state"]),
            s(&n["records"]),
            s(&n["load"]),
            s(&n["rtt_ms"]),
            s(&n["behind"]),
            if n["error"].is_null() { String::new() } else { s(&n["error"]) }
        );
    }
    Ok(())
}
