//! DMARC (RFC 7489): does an SPF or DKIM pass align with the From domain,
//! and what does that domain ask us to do when neither does? The domain's
//! `p=reject` and `p=quarantine` become hard actions (overridable per
//! symbol in `[policy.symbols]`); `p=none` only scores. A DNS error is a
//! temperror and never applies the policy (§6.6.2 step 4, §6.6.3).

use super::text::method_result;
use crate::pipeline::{Action, Findings, Symbol};
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, DmarcOutput, DmarcResult, MessageAuthenticator, SpfOutput};
use std::time::Duration;

/// The DMARC verdict; `None` when evaluation ran out of time. `dkim` must
/// already leave out signatures that do not cover the whole body.
pub async fn verify<'x>(
    dns: &MessageAuthenticator,
    msg: &'x AuthenticatedMessage<'x>,
    dkim: &'x [DkimOutput<'x>],
    mailfrom_domain: &'x str,
    spf: &'x SpfOutput,
    limit: Duration,
) -> Option<DmarcOutput> {
    let params = DmarcParameters::new(msg, dkim, mailfrom_domain, spf);
    tokio::time::timeout(limit, dns.verify_dmarc(params)).await.ok()
}

fn policy_word(p: Policy) -> &'static str {
    match p {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    }
}

pub fn report(dmarc: Option<&DmarcOutput>, out: &mut Findings) {
    let Some(d) = dmarc else {
        out.push(Symbol::new("DMARC_TEMPERROR", 0.0, "DMARC evaluation ran out of time"));
        out.auth_results.push(method_result("dmarc", "temperror", "evaluation timed out", &[]));
        return;
    };
    let domain = d.domain();
    let p = policy_word(d.policy());
    let (symbol, word) = match d.result() {
        DmarcResult::Pass => {
            (Symbol::new("DMARC_PASS", -0.5, format!("SPF or DKIM passes aligned with {domain}")), "pass")
        }
        DmarcResult::Fail(_) => (fail_symbol(domain, d.policy()), "fail"),
        DmarcResult::TempError(e) => {
            (Symbol::new("DMARC_TEMPERROR", 0.0, format!("DNS error evaluating DMARC for {domain}: {e}")), "temperror")
        }
        DmarcResult::PermError(e) => (
            Symbol::new("DMARC_PERMERROR", 0.0, format!("DMARC for {domain} could not be evaluated: {e}")),
            "permerror",
        ),
        DmarcResult::None if domain.is_empty() => {
            (Symbol::new("DMARC_NONE", 0.0, "no single From domain to evaluate"), "none")
        }
        DmarcResult::None => (Symbol::new("DMARC_NONE", 0.0, format!("{domain} publishes no DMARC policy")), "none"),
    };
    out.push(symbol);
    let ar = match (word, domain.is_empty()) {
        (_, true) => "dmarc=none".to_string(),
        ("none", false) => method_result("dmarc", word, "", &[("header.from", domain)]),
        _ => method_result("dmarc", word, "", &[("header.from", domain), ("policy.dmarc", p)]),
    };
    out.auth_results.push(ar);
}

/// Neither SPF nor DKIM passed aligned: the domain's requested policy
/// (RFC 7489 §6.3 `p=`, already lowered by mail-auth for `t=y`).
fn fail_symbol(domain: &str, p: Policy) -> Symbol {
    let why = |p: &str| format!("{domain} fails DMARC (no aligned SPF or DKIM pass) and asks to {p}");
    match p {
        Policy::Reject => Symbol::new("DMARC_POLICY_REJECT", 3.0, why("reject")).with_action(Action::Reject),
        Policy::Quarantine => {
            Symbol::new("DMARC_POLICY_QUARANTINE", 2.0, why("quarantine")).with_action(Action::Quarantine)
        }
        Policy::None | Policy::Unspecified => Symbol::new("DMARC_POLICY_NONE", 1.0, why("take no action (p=none)")),
    }
}
