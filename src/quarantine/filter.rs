//! Search filters from a query string (`?recipient=...&since=24h`), shared
//! by the API, the console and the CLI. Anything unknown or malformed is an
//! error that names the parameter, so a typo never silently widens a search
//! that a bulk action then applies to.

use crate::store::{QFilter, QPage, QStatus};
use std::collections::BTreeMap;

/// Largest page.
pub const MAX_LIMIT: usize = 500;

/// Parameters and what each means, for error messages and the docs.
pub const PARAMS: &[(&str, &str)] = &[
    ("recipient", "an envelope recipient, exactly"),
    ("sender", "the envelope sender, exactly (<> for the null sender)"),
    ("domain", "a domain of the sender or of a recipient"),
    ("symbol", "a symbol name; NAME* matches a prefix"),
    ("reason", "text in the policy's reason"),
    ("subject", "text in the Subject"),
    ("status", "held, released, expired, deleted or all"),
    ("since", "unix seconds, an RFC 3339 time, a date, or a duration ago (24h)"),
    ("until", "like since; exclusive"),
    ("limit", "page size, 1 to 500 (default 50)"),
    ("cursor", "the `next` value of the previous page"),
    ("order", "newest (default) or oldest"),
];

/// Parses the parameters; `now` anchors relative times such as `24h`.
pub fn parse(params: &BTreeMap<String, String>, now: u64) -> Result<(QFilter, QPage), String> {
    let mut f = QFilter::default();
    let mut page = QPage::default();
    for (key, value) in params {
        let v = value.trim();
        if v.is_empty() {
            continue;
        }
        let text = || Some(v.to_string());
        match key.as_str() {
            "recipient" => f.recipient = text(),
            "sender" => f.sender = text(),
            "domain" => f.domain = text(),
            "symbol" => f.symbol = text(),
            "reason" => f.reason = text(),
            "subject" => f.subject = text(),
            "status" if v == "all" => f.status = None,
            "status" => f.status = Some(QStatus::parse(v).ok_or_else(|| bad("status", v))?),
            "since" => f.since = Some(time(v, now).ok_or_else(|| bad("since", v))?),
            "until" => f.until = Some(time(v, now).ok_or_else(|| bad("until", v))?),
            "limit" => {
                page.limit = v.parse().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| bad("limit", v))?
            }
            "cursor" => {
                if v.split_once(':').is_none_or(|(a, _)| a.parse::<u64>().is_err()) {
                    return Err(bad("cursor", v));
                }
                page.after = text();
            }
            "order" => {
                page.oldest_first = match v {
                    "newest" => false,
                    "oldest" => true,
                    _ => return Err(bad("order", v)),
                }
            }
            other => {
                let known: Vec<&str> = PARAMS.iter().map(|(k, _)| *k).collect();
                return Err(format!("unknown filter `{other}`; known: {}", known.join(", ")));
            }
        }
    }
    if let (Some(s), Some(u)) = (f.since, f.until)
        && s >= u
    {
        return Err("`since` must be before `until`".into());
    }
    Ok((f, page))
}

fn bad(key: &str, value: &str) -> String {
    let what = PARAMS.iter().find(|(k, _)| *k == key).map_or("", |(_, w)| *w);
    let shown: String = value.chars().take(60).collect();
    format!("invalid `{key}` value `{shown}`: expected {what}")
}

/// Unix seconds, RFC 3339 (`2026-11-26T10:00:00Z`), a date (`2026-11-26`,
/// midnight UTC), or a duration meaning that long ago (`24h`, `7d`).
fn time(v: &str, now: u64) -> Option<u64> {
    if let Ok(n) = v.parse::<u64>() {
        return Some(n);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Some(now.saturating_sub(d.as_secs()));
    }
    let full = if v.len() == 10 { format!("{v}T00:00:00Z") } else { v.to_string() };
    let t = humantime::parse_rfc3339_weak(full.trim_end_matches('Z')).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Result<(QFilter, QPage), String> {
        parse(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), 1_000_000)
    }

    #[test]
    fn filters_and_pages() {
        let (f, page) = p(&[("recipient", "b@x.test"), ("status", "held"), ("since", "1h"), ("limit", "10")]).unwrap();
        assert_eq!(f.recipient.as_deref(), Some("b@x.test"));
        assert_eq!(f.status, Some(QStatus::Held));
        assert_eq!(f.since, Some(1_000_000 - 3600));
        assert_eq!(page.limit, 10);
        assert_eq!(p(&[("since", "2026-11-26")]).unwrap().0.since, Some(1_795_651_200));
        assert_eq!(p(&[("until", "2026-11-26T01:00:00Z")]).unwrap().0.until, Some(1_795_654_800));
        assert_eq!(p(&[("status", "all")]).unwrap().0.status, None);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(p(&[("status", "gone")]).unwrap_err().contains("invalid `status`"));
        assert!(p(&[("limit", "0")]).unwrap_err().contains("invalid `limit`"));
        assert!(p(&[("limit", "501")]).is_err());
        assert!(p(&[("since", "yesterday-ish")]).unwrap_err().contains("invalid `since`"));
        assert!(p(&[("recipeint", "x")]).unwrap_err().contains("unknown filter `recipeint`"));
        assert!(p(&[("since", "100"), ("until", "50")]).unwrap_err().contains("before"));
        assert!(p(&[("cursor", "zz")]).is_err());
    }
}
