//! What the two transports share: the [pipeline](crate::pipeline) (whose scheduler holds the
//! job slots), the NATS client, and the tasks of the jobs in hand.

use std::sync::Arc;

use tokio_util::task::TaskTracker;

use crate::pipeline::Pipeline;

pub struct Worker {
    pub pipeline: Arc<Pipeline>,
    pub client: async_nats::Client,
    /// Every job's task, from its arrival until it is answered (and, durable, stored and
    /// acked): the drain waits for them.
    pub jobs: TaskTracker,
}

impl Worker {
    /// The largest message the connected server takes.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }
}
