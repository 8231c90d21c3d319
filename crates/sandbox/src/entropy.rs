//! A WASI context whose clocks and randomness are a host's [`Entropy`]: what a job reads of
//! `wasi:clocks` and draws from `wasi:random` is then what the host recorded or replays.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

use crate::host::Entropy;

struct Wall(Arc<dyn Entropy>);

impl HostWallClock for Wall {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn now(&self) -> Duration {
        self.0.wall_clock()
    }
}

struct Monotonic(Arc<dyn Entropy>);

impl HostMonotonicClock for Monotonic {
    fn resolution(&self) -> u64 {
        1_000
    }

    fn now(&self) -> u64 {
        self.0.monotonic_clock()
    }
}

struct Random(Arc<dyn Entropy>);

impl rand::TryRng for Random {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0; 4];
        self.0.random(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0; 8];
        self.0.random(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, bytes: &mut [u8]) -> Result<(), Infallible> {
        self.0.random(bytes);
        Ok(())
    }
}

/// A context that grants what the default one grants (nothing), with its clocks and its
/// randomness (the insecure seed included, drawn now) from `entropy`.
pub(crate) fn wasi_ctx(entropy: Arc<dyn Entropy>) -> WasiCtx {
    let mut seed = [0; 16];
    entropy.random(&mut seed);
    WasiCtx::builder()
        .wall_clock(Wall(entropy.clone()))
        .monotonic_clock(Monotonic(entropy.clone()))
        .secure_random(Random(entropy.clone()))
        .insecure_random(Random(entropy))
        .insecure_random_seed(u128::from_le_bytes(seed))
        .build()
}
