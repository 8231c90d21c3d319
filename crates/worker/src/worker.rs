//! What the two transports share: the [pipeline](crate::pipeline), the NATS client and the
//! job slots.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::pipeline::Pipeline;

pub struct Worker {
    pub pipeline: Arc<Pipeline>,
    pub client: async_nats::Client,
    /// `nats.max_concurrent_jobs`, taken by both transports: a job runs only with a slot.
    pub slots: Arc<Semaphore>,
}

impl Worker {
    /// The largest message the connected server takes.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}
