//! The `auth` stage: SPF, DKIM, DMARC, ARC (being written).

use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {}

#[derive(Debug, Clone, Copy)]
pub struct Methods {
    pub spf: bool,
    pub dkim: bool,
    pub dmarc: bool,
    pub arc: bool,
}

impl Methods {
    pub fn any(&self) -> bool {
        self.spf || self.dkim || self.dmarc || self.arc
    }
}

pub struct Auth {}

impl Auth {
    pub fn new(_cfg: &AuthConfig, _methods: Methods, _all: &crate::config::Config) -> Result<Auth, String> {
        Ok(Auth {})
    }
}

impl Stage for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn check<'a>(&'a self, _input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async { Ok(Findings::default()) })
    }
}
