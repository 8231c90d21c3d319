//! API-action jobs through the worker's in-process path (`Pipeline::run`: resolve, limits, render, egress
//! policy, secrets, trace, result), beside the raw request rate of the same HTTP client
//! against the same loopback server, in one run.
//!
//!     cargo bench -p action-worker --bench api_bench     # env N: jobs per row (default 3000)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use action_egress::{Egress, EgressConfig, SystemResolver};
use action_protocol::{ActionDefinition, ActionRef, Job, Status};
use action_sandbox::{Sandbox, SandboxConfig};
use action_worker::config::LimitsConfig;
use action_worker::execute::Executor;
use action_worker::pipeline::{Arrival, Path, Pipeline};
use axum::Router;
use axum::routing::get;
use serde_json::json;

fn report(label: &str, n: usize, wall: Duration, mut times: Vec<Duration>) {
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{label:<46} {:>8.0} per second   p50 {:>6.0} µs  p99 {:>6.0} µs",
        n as f64 / wall.as_secs_f64(),
        p(0.5),
        p(0.99)
    );
}

async fn timed<F, Fut>(n: usize, concurrency: usize, f: F) -> (Duration, Vec<Duration>)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..concurrency {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut times = vec![];
            for _ in 0..n / concurrency {
                let t = Instant::now();
                f().await;
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut all = vec![];
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    (start.elapsed(), all)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let app = Router::new().route(
        "/stock/{id}",
        get(
            |axum::extract::Path(id): axum::extract::Path<String>| async move {
                axum::Json(json!({"productId": id, "inStock": true, "quantity": 12}))
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let root = action_worker_tests::repo_root();
    let mut sandbox_config = SandboxConfig::new(root.join("build/action-runtime.wasm"));
    sandbox_config.cache_dir = Some(root.join("build/cache"));
    sandbox_config.warm_instances = 0;
    let egress_config = EgressConfig {
        allow_private_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        ..EgressConfig::default()
    };
    let executor = Executor::new(
        Sandbox::new(sandbox_config).unwrap(),
        Egress::new(egress_config, Arc::new(SystemResolver)).unwrap(),
        LimitsConfig::default(),
    );
    let pipeline = Arc::new(Pipeline::local(Arc::new(executor)));
    let action: ActionDefinition = serde_json::from_value(json!({
        "name": "checkProductStock", "type": "api", "description": "Stock.",
        "api": {"base_url": format!("http://{addr}"), "path": "/stock/$productId", "headers": {"x-api-key": "k"}}
    }))
    .unwrap();
    let job = Arc::new(Job {
        id: "bench".into(),
        tenant: None,
        action: ActionRef::Inline(Box::new(action)),
        args: json!({"productId": "SKU-1"}).as_object().unwrap().clone(),
        conversation: None,
        business: None,
        customer: None,
        test: false,
        timeout_ms: None,
        reply_to: None,
        conversation_id: None,
        record: false,
        replay: None,
    });
    let raw = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/stock/SKU-1");

    for (round, concurrency) in [(0, 1), (1, 1), (1, 16)] {
        let raw = raw.clone();
        let url = url.clone();
        let (wall, times) = timed(n, concurrency, move || {
            let raw = raw.clone();
            let url = url.clone();
            async move {
                let body = raw
                    .get(&url)
                    .header("x-api-key", "k")
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                assert!(!body.is_empty());
            }
        })
        .await;
        if round == 1 {
            report(
                &format!("raw reqwest, {concurrency} in flight"),
                n,
                wall,
                times,
            );
        }
        let pipeline = pipeline.clone();
        let job = job.clone();
        let (wall, times) = timed(n, concurrency, move || {
            let pipeline = pipeline.clone();
            let job = job.clone();
            async move {
                let result = pipeline.run(&job, Arrival::new(Path::Local, 1)).await;
                assert_eq!(result.status, Status::Ok, "{result:?}");
            }
        })
        .await;
        if round == 1 {
            report(
                &format!("API action job (Pipeline::run), {concurrency} in flight"),
                n,
                wall,
                times,
            );
        }
    }
}
