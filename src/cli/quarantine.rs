//! `mxgate quarantine list|show|release|delete|allow|bulk|audit` against the
//! admin API. Tables for people, `--json` for scripts: `list --json` prints
//! a JSON array of records (id, status, subject, from, recipients, reasons...).

use super::http::send;
use super::queue::{date, resolve, s, truncate};
use super::{QuarantineAction, Search, Target};
use crate::form::encode as enc;
use serde_json::{Value, json};

pub async fn run(action: QuarantineAction, target: Target) -> Result<(), String> {
    let (url, token) = resolve(&target)?;
    let call = |method: &'static str, path: String, body: Option<String>| {
        let (url, token) = (url.clone(), token.clone());
        async move { send(&url, method, &path, token.as_deref(), body.as_deref()).await }
    };
    match action {
        QuarantineAction::List { search } => {
            let resp = call("GET", format!("/api/v1/quarantine?{}", query(&search)), None).await?;
            let v = checked(resp.status, &resp.body)?;
            match target.json {
                true => println!("{}", pretty(&v)),
                false => print_list(&v, resp.header("x-next-cursor")),
            }
        }
        QuarantineAction::Show { id, raw: true } => {
            let resp = call("GET", format!("/api/v1/quarantine/{}/raw", enc(&id)), None).await?;
            if resp.status != 200 {
                checked(resp.status, &resp.body)?;
            }
            use std::io::Write;
            std::io::stdout().write_all(&resp.bytes).map_err(|e| e.to_string())?;
        }
        QuarantineAction::Show { id, raw: false } => {
            let resp = call("GET", format!("/api/v1/quarantine/{}", enc(&id)), None).await?;
            let v = checked(resp.status, &resp.body)?;
            match target.json {
                true => println!("{}", pretty(&v)),
                false => print_show(&v),
            }
        }
        QuarantineAction::Release { ids } => each(&call, &ids, "POST", "/release", target.json).await?,
        QuarantineAction::Delete { ids } => each(&call, &ids, "DELETE", "", target.json).await?,
        QuarantineAction::Allow { ids, scope } => {
            let suffix = scope.map_or("/allow".into(), |sc| format!("/allow?scope={}", enc(&sc)));
            each(&call, &ids, "POST", &suffix, target.json).await?
        }
        QuarantineAction::Bulk { action, search } => {
            let filter: serde_json::Map<String, Value> =
                pairs(&search).into_iter().map(|(k, v)| (k.to_string(), Value::String(v))).collect();
            let body = json!({ "action": action, "filter": filter }).to_string();
            let resp = call("POST", "/api/v1/quarantine/bulk".into(), Some(body)).await?;
            let v = checked(resp.status, &resp.body)?;
            match target.json {
                true => println!("{}", pretty(&v)),
                false => {
                    let n = |k: &str| v[k].as_array().map_or(0, Vec::len);
                    println!("{action}: {} done, {} refused, {} not found", n("done"), n("refused"), n("not_found"));
                }
            }
        }
        QuarantineAction::Audit { limit } => {
            let resp = call("GET", format!("/api/v1/audit?limit={limit}"), None).await?;
            let v = checked(resp.status, &resp.body)?;
            match target.json {
                true => println!("{}", pretty(&v)),
                false => print_audit(&v),
            }
        }
    }
    Ok(())
}

/// One request per id; every id is tried, and the command fails if any did.
async fn each<F, Fut>(call: &F, ids: &[String], method: &'static str, suffix: &str, as_json: bool) -> Result<(), String>
where
    F: Fn(&'static str, String, Option<String>) -> Fut,
    Fut: Future<Output = Result<super::http::HttpResponse, String>>,
{
    let mut results = Vec::new();
    let mut failed = 0;
    for id in ids {
        let resp = call(method, format!("/api/v1/quarantine/{}{suffix}", enc(id)), None).await?;
        match checked(resp.status, &resp.body) {
            Ok(v) => {
                if !as_json {
                    println!("{id}: {}", s(&v["result"]));
                }
                results.push(v);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{id}: {e}");
                results.push(json!({ "id": id, "error": e }));
            }
        }
    }
    if as_json {
        println!("{}", pretty(&Value::Array(results)));
    }
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} of {} failed", ids.len())),
    }
}

fn checked(status: u16, body: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| format!("HTTP {status}: {}", body.trim()))?;
    if status != 200 {
        let msg = v.get("error").and_then(Value::as_str).unwrap_or("request failed");
        return Err(format!("{msg} (HTTP {status})"));
    }
    Ok(v)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn pairs(q: &Search) -> Vec<(&'static str, String)> {
    let all = [
        ("recipient", &q.recipient),
        ("sender", &q.sender),
        ("domain", &q.domain),
        ("symbol", &q.symbol),
        ("reason", &q.reason),
        ("subject", &q.subject),
        ("status", &q.status),
        ("since", &q.since),
        ("until", &q.until),
        ("limit", &q.limit),
        ("cursor", &q.cursor),
        ("order", &q.order),
    ];
    all.into_iter().filter_map(|(k, v)| v.clone().map(|v| (k, v))).collect()
}

fn query(q: &Search) -> String {
    pairs(q).iter().map(|(k, v)| format!("{k}={}", enc(v))).collect::<Vec<_>>().join("&")
}

/// The symbols that counted: a score or an action of their own.
fn names(e: &Value) -> String {
    let all: Vec<&Value> = e["symbols"].as_array().into_iter().flatten().collect();
    let counted = |x: &&&Value| x["score"].as_f64().is_some_and(|v| v != 0.0) || !x["action"].is_null();
    let shown: Vec<String> = all.iter().filter(counted).map(|x| s(&x["name"])).collect();
    match shown.is_empty() {
        true => all.iter().map(|x| s(&x["name"])).collect::<Vec<_>>().join(","),
        false => shown.join(","),
    }
}

fn print_list(v: &Value, next: Option<&str>) {
    let items = v.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        println!("no quarantined messages match");
        return;
    }
    println!("{:<20} {:<17} {:<9} {:<26} {:<24} {:<28} REASONS", "ID", "RECEIVED", "STATUS", "FROM", "TO", "SUBJECT");
    for e in &items {
        let to: Vec<String> = e["recipients"].as_array().into_iter().flatten().map(s).collect();
        let when = date(&e["received_at"]);
        println!(
            "{:<20} {:<17} {:<9} {:<26} {:<24} {:<28} {}",
            s(&e["id"]),
            when.get(5..22).unwrap_or(&when),
            s(&e["status"]),
            truncate(e["sender"].as_str().unwrap_or("<>"), 26),
            truncate(&to.join(","), 24),
            truncate(&s(&e["subject"]), 28),
            names(e)
        );
    }
    println!("{} message(s)", items.len());
    if let Some(c) = next {
        println!("more: add --cursor {c}");
    }
}

fn print_show(e: &Value) {
    println!("id:         {}", s(&e["id"]));
    println!("status:     {}{}", s(&e["status"]), changed(e));
    println!(
        "received:   {} from {} (helo {}, tls {})",
        date(&e["received_at"]),
        s(&e["client_ip"]),
        s(&e["helo"]),
        s(&e["tls"])
    );
    println!("expires:    {}", date(&e["expires_at"]));
    println!("sender:     {}", e["sender"].as_str().unwrap_or("<>"));
    let rcpts: Vec<String> = e["recipients"].as_array().into_iter().flatten().map(s).collect();
    println!("recipients: {}", rcpts.join(", "));
    for (label, key) in
        [("From", "from"), ("To", "to"), ("Subject", "subject"), ("Date", "date"), ("Message-ID", "message_id")]
    {
        println!("{:<11} {}", format!("{label}:"), s(&e[key]));
    }
    println!("size:       {}", s(&e["size"]));
    let score = e["score"].as_f64().map_or("-".into(), |x| format!("{x:.1}"));
    println!("verdict:    {} (score {score}): {}", s(&e["action"]), s(&e["reason"]));
    for sym in e["symbols"].as_array().into_iter().flatten() {
        let sc = sym["score"].as_f64().map_or("-".into(), |x| format!("{x:.1}"));
        println!("  {:<34} {:>6}  {}", s(&sym["name"]), sc, s(&sym["reason"]));
    }
    let p = &e["preview"];
    for a in p["attachments"].as_array().into_iter().flatten() {
        println!("attachment: {} ({}, {} octets)", s(&a["name"]), s(&a["content_type"]), s(&a["size"]));
    }
    if let Some(text) = p["text"].as_str() {
        println!("--- text (first 20 lines) ---");
        let clean: String = text.chars().filter(|c| !c.is_control() || *c == '\n').collect();
        for line in clean.lines().take(20) {
            println!("{line}");
        }
    }
}

fn changed(e: &Value) -> String {
    match e["changed"].is_object() {
        true => format!(" (by {} at {})", s(&e["changed"]["by"]), date(&e["changed"]["at"])),
        false => String::new(),
    }
}

fn print_audit(v: &Value) {
    println!("{:<31} {:<20} {:<10} {:<20} DETAIL", "WHEN", "WHO", "WHAT", "ID");
    for e in v.as_array().into_iter().flatten() {
        println!(
            "{:<31} {:<20} {:<10} {:<20} {}",
            date(&e["at"]),
            s(&e["by"]),
            s(&e["action"]),
            s(&e["id"]),
            s(&e["detail"])
        );
    }
}
