//! The `dnsbl` stage (being written).

use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsblConfig {}

pub struct Dnsbl {}

impl Dnsbl {
    pub fn new(_cfg: &DnsblConfig, _resolver: hickory_resolver::TokioResolver) -> Result<Dnsbl, String> {
        Ok(Dnsbl {})
    }
}

impl Stage for Dnsbl {
    fn name(&self) -> &'static str {
        "dnsbl"
    }

    fn check<'a>(&'a self, _input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async { Ok(Findings::default()) })
    }
}
