//! What the two transports share: the [pipeline](crate::pipeline) (whose scheduler holds the
//! job slots) and the NATS client.

use std::sync::Arc;

use crate::pipeline::Pipeline;

pub struct Worker {
    pub pipeline: Arc<Pipeline>,
    pub client: async_nats::Client,
}

impl Worker {
    /// The largest message the connected server takes.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}
