//! The `uribl` stage (being written).

use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UriblConfig {}

pub struct Uribl {}

impl Uribl {
    pub fn new(_cfg: &UriblConfig, _resolver: hickory_resolver::TokioResolver) -> Result<Uribl, String> {
        Ok(Uribl {})
    }
}

impl Stage for Uribl {
    fn name(&self) -> &'static str {
        "uribl"
    }

    fn check<'a>(&'a self, _input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async { Ok(Findings::default()) })
    }
}
