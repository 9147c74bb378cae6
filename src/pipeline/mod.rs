//! The seam between DATA and the 250 reply: every accepted message passes
//! through the pipeline's stages before it is queued, so a verdict can still
//! reject it in the session (no backscatter). The core ships with no stages;
//! scanning stages plug in here.

use crate::smtp::Reply;
use crate::store::BoxFut;
use serde::{Deserialize, Serialize};

/// What a stage may know about the session: plain data, so a stage can run
/// in another process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub queue_id: String,
    pub client_ip: String,
    pub helo: String,
    pub tls: bool,
    pub sender: Option<String>,
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Deliver,
    /// Keep the message, but do not deliver it (held in the queue).
    Hold(String),
    /// Refuse the message with this reply (5xx or 4xx).
    Refuse(Reply),
}

pub trait Stage: Send + Sync {
    fn name(&self) -> &str;
    fn check<'a>(&'a self, facts: &'a Facts, message: &'a [u8]) -> BoxFut<'a, Verdict>;
}

#[derive(Default)]
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
}

impl Pipeline {
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Pipeline {
        Pipeline { stages }
    }

    /// Runs the stages in order; the first verdict other than Deliver wins.
    pub async fn run(&self, facts: &Facts, message: &[u8]) -> Verdict {
        for s in &self.stages {
            let v = s.check(facts, message).await;
            if v != Verdict::Deliver {
                tracing::info!(queue_id = %facts.queue_id, stage = s.name(), verdict = ?v, "pipeline verdict");
                return v;
            }
        }
        Verdict::Deliver
    }
}
