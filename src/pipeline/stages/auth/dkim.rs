//! DKIM (RFC 6376): every signature is verified and reported. A signature
//! whose `l=` tag covers less than the body (§8.2) only vouches for a
//! prefix: anything appended after signing rides along. Such a signature
//! is reported as `dkim=policy` with `DKIM_PARTIAL_BODY`, naming how much
//! was signed, and is not offered to DMARC as a pass.

use super::text::method_result;
use crate::pipeline::{Findings, Symbol};
use mail_auth::common::headers::{Writable, Writer};
use mail_auth::dkim::{Canonicalization, DkimError, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, Error, MessageAuthenticator};
use std::cell::OnceCell;
use std::time::Duration;

/// Every signature's result; `None` when verification ran out of time.
pub async fn verify<'x>(
    dns: &MessageAuthenticator,
    msg: &'x AuthenticatedMessage<'x>,
    limit: Duration,
) -> Option<Vec<DkimOutput<'x>>> {
    tokio::time::timeout(limit, dns.verify_dkim(msg)).await.ok()
}

/// Counts octets instead of hashing them.
struct Count(u64);

impl Writer for Count {
    fn write(&mut self, buf: &[u8]) {
        self.0 += buf.len() as u64;
    }
}

/// The canonical body length under each canonicalization, computed at most
/// once per message: a message with many `l=` signatures costs two passes
/// over its body, not two per signature.
pub struct BodyLength<'m> {
    msg: &'m AuthenticatedMessage<'m>,
    simple: OnceCell<u64>,
    relaxed: OnceCell<u64>,
}

impl<'m> BodyLength<'m> {
    pub fn new(msg: &'m AuthenticatedMessage<'m>) -> Self {
        BodyLength { msg, simple: OnceCell::new(), relaxed: OnceCell::new() }
    }

    fn of(&self, cb: Canonicalization) -> u64 {
        let cell = if cb == Canonicalization::Relaxed { &self.relaxed } else { &self.simple };
        *cell.get_or_init(|| {
            let mut n = Count(0);
            cb.canonical_body(self.msg.raw_body(), 0).write(&mut n);
            n.0
        })
    }
}

/// `(signed, total)` canonical body octets when `l=` leaves part of the
/// body unsigned.
pub fn partial(body: &BodyLength<'_>, sig: &Signature) -> Option<(u64, u64)> {
    if sig.l == 0 {
        return None;
    }
    let n = body.of(sig.cb);
    (sig.l < n).then_some((sig.l, n))
}

/// The outputs DMARC may count: passes that signed only part of the body
/// are left out, so appended content cannot borrow the domain's alignment.
pub fn for_dmarc<'x>(body: &BodyLength<'_>, outputs: &[DkimOutput<'x>]) -> Vec<DkimOutput<'x>> {
    outputs.iter().filter(|o| o.signature().is_none_or(|s| partial(body, s).is_none())).cloned().collect()
}

/// One signature as a symbol name, score, RFC 8601 result and explanation.
fn classify(body: &BodyLength<'_>, o: &DkimOutput<'_>) -> (&'static str, f64, &'static str, String) {
    let partial = o.signature().and_then(|s| partial(body, s));
    match (o.result(), partial) {
        (DkimResult::Pass, Some((signed, total))) => (
            "DKIM_PARTIAL_BODY",
            1.0,
            "policy",
            format!("l={signed} signs only {signed} of {total} body octets; the rest is unsigned"),
        ),
        (DkimResult::Pass, None) => ("DKIM_PASS", -0.2, "pass", "valid signature".into()),
        // RFC 6376 §6.1.3: a body hash mismatch is a failed signature.
        (DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)), _) => {
            ("DKIM_FAIL", 1.0, "fail", "body hash did not verify: the body changed after signing".into())
        }
        (DkimResult::Fail(e), _) => ("DKIM_FAIL", 1.0, "fail", e.to_string()),
        (DkimResult::Neutral(e), _) => ("DKIM_NEUTRAL", 0.5, "neutral", e.to_string()),
        (DkimResult::PermError(e), _) => ("DKIM_PERMERROR", 0.5, "permerror", e.to_string()),
        (DkimResult::TempError(e), _) => ("DKIM_TEMPERROR", 0.0, "temperror", e.to_string()),
        (DkimResult::None, _) => ("DKIM_NONE", 0.0, "none", "no signature".into()),
    }
}

/// One symbol per distinct outcome (listing the signers) and one method
/// result per signature.
pub fn report(body: &BodyLength<'_>, outputs: Option<&[DkimOutput<'_>]>, out: &mut Findings) {
    let Some(outputs) = outputs else {
        out.push(Symbol::new("DKIM_TEMPERROR", 0.0, "DKIM verification ran out of time"));
        out.auth_results.push(method_result("dkim", "temperror", "verification timed out", &[]));
        return;
    };
    if outputs.is_empty() {
        out.push(Symbol::new("DKIM_NONE", 0.0, "the message is not signed"));
        out.auth_results.push("dkim=none".into());
        return;
    }
    let mut symbols: Vec<Symbol> = Vec::new();
    for o in outputs {
        let (name, score, word, why) = classify(body, o);
        let signer = o.signature().map_or_else(|| "malformed signature".to_string(), |s| format!("{} ({})", s.d, s.s));
        let note = format!("{signer}: {why}");
        match symbols.iter_mut().find(|s| s.name == name) {
            Some(s) => s.reason = format!("{}; {note}", s.reason),
            None => symbols.push(Symbol::new(name, score, note)),
        }
        let props = o.signature().map(|s| [("header.d", s.d.as_str()), ("header.s", s.s.as_str())]);
        let comment = if word == "pass" { String::new() } else { why };
        out.auth_results.push(method_result("dkim", word, &comment, props.as_ref().map_or(&[][..], |p| &p[..])));
    }
    for s in symbols {
        out.push(s);
    }
}

/// More signatures than we verify: reported instead of checked, so a
/// message cannot make us hash its body and query DNS without bound.
pub fn report_crowded(count: usize, max: usize, out: &mut Findings) {
    out.push(Symbol::new(
        "DKIM_TOO_MANY_SIGNATURES",
        1.0,
        format!("{count} DKIM and ARC signatures exceed the {max} verified; none were checked"),
    ));
    out.auth_results.push(method_result("dkim", "permerror", "too many signatures", &[]));
}
