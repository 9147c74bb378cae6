//! The `heuristics` stage (being written).

use crate::pipeline::{Findings, Input, Stage, StageError};
use crate::store::BoxFut;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeuristicsConfig {}

pub struct Heuristics {}

impl Heuristics {
    pub fn new(_cfg: &HeuristicsConfig) -> Result<Heuristics, String> {
        Ok(Heuristics {})
    }
}

impl Stage for Heuristics {
    fn name(&self) -> &'static str {
        "heuristics"
    }

    fn check<'a>(&'a self, _input: &'a Input<'a>) -> BoxFut<'a, Result<Findings, StageError>> {
        Box::pin(async { Ok(Findings::default()) })
    }
}
