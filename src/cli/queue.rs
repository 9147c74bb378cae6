//! `mxgate queue list|show|retry|delete` against the admin API.

use super::http::request;
use super::{QueueAction, Target};
use serde_json::Value;

pub async fn run(action: QueueAction, target: Target) -> Result<(), String> {
    let (url, token) = resolve(&target)?;
    let (method, path) = match &action {
        QueueAction::List => ("GET", "/api/v1/queue".to_string()),
        QueueAction::Show { id } => ("GET", format!("/api/v1/queue/{id}")),
        QueueAction::Retry { id } => ("POST", format!("/api/v1/queue/{id}/retry")),
        QueueAction::Delete { id } => ("DELETE", format!("/api/v1/queue/{id}")),
    };
    let v = json_call(&url, method, &path, token.as_deref()).await?;
    if target.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    match action {
        QueueAction::List => print_list(&v),
        QueueAction::Show { .. } => print_show(&v),
        _ => println!("{}: {}", s(&v["id"]), s(&v["result"])),
    }
    Ok(())
}

/// One API call whose answer is JSON; a non-200 answer is its error text.
pub async fn json_call(url: &str, method: &str, path: &str, token: Option<&str>) -> Result<Value, String> {
    let resp = request(url, method, path, token).await?;
    let v: Value =
        serde_json::from_str(&resp.body).map_err(|_| format!("HTTP {}: {}", resp.status, resp.body.trim()))?;
    if resp.status != 200 {
        let msg = v.get("error").and_then(Value::as_str).unwrap_or("request failed");
        return Err(format!("{msg} (HTTP {})", resp.status));
    }
    Ok(v)
}

/// The admin URL and token: flags and environment over the config file.
pub fn resolve(t: &Target) -> Result<(String, Option<String>), String> {
    let cfg = match &t.config {
        Some(path) => Some(crate::config::load(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let url = match (&t.url, &cfg) {
        (Some(u), _) => u.clone(),
        (None, Some(c)) => format!("http://{}", c.admin.listen),
        (None, None) => "http://127.0.0.1:8025".into(),
    };
    let token = t.token.clone().or_else(|| cfg.and_then(|c| c.admin.token));
    Ok((url, token))
}

pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_list(v: &Value) {
    let items = v.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("queue is empty");
        return;
    }
    println!("{:<20} {:>8} {:>4} {:<28} {:<30} WHY", "ID", "SIZE", "TRY", "FROM", "TO");
    for e in &items {
        let to: Vec<String> = e["recipients"].as_array().into_iter().flatten().map(|r| s(&r["address"])).collect();
        println!(
            "{:<20} {:>8} {:>4} {:<28} {:<30} {}",
            s(&e["id"]),
            s(&e["size"]),
            s(&e["attempts"]),
            truncate(&e["sender"].as_str().map_or("<>".into(), |x| x.to_string()), 28),
            truncate(&to.join(","), 30),
            s(&e["why"])
        );
    }
    println!("{} message(s)", items.len());
}

fn print_show(e: &Value) {
    println!("id:           {}", s(&e["id"]));
    println!(
        "state:        {}{}",
        s(&e["state"]),
        if e["delivering"] == Value::Bool(true) { " (delivering now)" } else { "" }
    );
    println!("why:          {}", s(&e["why"]));
    println!(
        "received:     {} from {} (helo {}, tls {})",
        date(&e["received_at"]),
        s(&e["client_ip"]),
        s(&e["helo"]),
        s(&e["tls"])
    );
    println!("sender:       {}", e["sender"].as_str().unwrap_or("<>"));
    println!("size:         {}", s(&e["size"]));
    println!("attempts:     {}", s(&e["attempts"]));
    println!("next attempt: {}", date(&e["next_attempt"]));
    println!("last error:   {}", s(&e["last_error"]));
    let v = &e["verdict"];
    if v.is_object() {
        println!(
            "verdict:      {} (score {})",
            s(&v["action"]),
            v["score"].as_f64().map_or("-".into(), |x| format!("{x:.1}"))
        );
        for sym in v["symbols"].as_array().into_iter().flatten() {
            println!(
                "  {:<32} {:>6}  {}",
                s(&sym["name"]),
                sym["score"].as_f64().map_or("-".into(), |x| format!("{x:.1}")),
                s(&sym["reason"])
            );
        }
    }
    println!("recipients:");
    for r in e["recipients"].as_array().into_iter().flatten() {
        println!("  {:<40} {:<10} {}", s(&r["address"]), s(&r["status"]), s(&r["last_reply"]));
    }
}

pub fn date(v: &Value) -> String {
    v.as_u64().map_or("-".into(), crate::time::rfc5322)
}

pub fn truncate(s: &str, n: usize) -> String {
    match s.chars().count() > n {
        true => s.chars().take(n - 1).collect::<String>() + "…",
        false => s.to_string(),
    }
}
