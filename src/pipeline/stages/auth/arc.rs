//! ARC (RFC 8617): verifies the chain of ARC sets intermediaries added, so
//! a forwarder's seal can be seen even when forwarding broke SPF or DKIM.
//! The result is reported only; it does not change the DMARC verdict.

use super::text::method_result;
use crate::pipeline::{Findings, Symbol};
use mail_auth::{ArcOutput, AuthenticatedMessage, DkimResult, MessageAuthenticator};
use std::time::Duration;

/// The chain's verdict; `None` when verification ran out of time.
pub async fn verify<'x>(
    dns: &MessageAuthenticator,
    msg: &'x AuthenticatedMessage<'x>,
    limit: Duration,
) -> Option<ArcOutput<'x>> {
    tokio::time::timeout(limit, dns.verify_arc(msg)).await.ok()
}

pub fn report(arc: Option<&ArcOutput<'_>>, out: &mut Findings) {
    let Some(arc) = arc else {
        out.push(Symbol::new("ARC_TEMPERROR", 0.0, "ARC verification ran out of time"));
        out.auth_results.push(method_result("arc", "temperror", "verification timed out", &[]));
        return;
    };
    let sets = arc.sets().len();
    let sealer = arc.sets().last().map_or(String::new(), |s| s.seal.header.d.clone());
    let (name, score, word, why) = match arc.result() {
        DkimResult::None => ("ARC_NONE", 0.0, "none", "no ARC sets".to_string()),
        DkimResult::Pass => {
            ("ARC_PASS", -0.1, "pass", format!("ARC chain of {sets} set(s) verified, last sealed by {sealer}"))
        }
        DkimResult::TempError(e) => ("ARC_TEMPERROR", 0.0, "temperror", format!("DNS error verifying ARC: {e}")),
        // RFC 8617 §5.2: any structural or cryptographic problem fails the chain.
        DkimResult::Fail(e) | DkimResult::Neutral(e) | DkimResult::PermError(e) => {
            ("ARC_FAIL", 0.5, "fail", format!("ARC chain of {sets} set(s) does not verify: {e}"))
        }
    };
    let note = if word == "fail" || word == "temperror" { why.as_str() } else { "" };
    out.auth_results.push(method_result("arc", word, note, &[]));
    out.push(Symbol::new(name, score, why));
}
