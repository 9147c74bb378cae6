//! The `phishing` stage (being written).

use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PhishingConfig {}

pub struct Phishing {}

impl Phishing {
    pub fn new(_cfg: &PhishingConfig, _protected: &[String]) -> Result<Phishing, String> {
        Ok(Phishing {})
    }
}

impl Stage for Phishing {
    fn name(&self) -> &'static str {
        "phishing"
    }

    fn check<'a>(&'a self, _input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async { Ok(Findings::default()) })
    }
}
