//! What the egress policy adds to an HTTP call: the same loopback GET through a plain
//! `reqwest::Client` and through `Egress::send` (URL checks, policy-checked resolution,
//! manual redirect handling, capped body read, secret resolution and redaction), side by side.
//!
//!     cargo bench -p action-egress --bench egress_bench     # env N: calls per row (default 2000)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use action_egress::{CallOptions, Egress, EgressConfig, Secret, SecretStore, StaticResolver};
use action_protocol::HttpRequest;
use axum::Router;
use axum::routing::get;

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let p = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    println!(
        "{label:<52} p50 {:>7.1} µs  p99 {:>7.1} µs",
        p(0.5),
        p(0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let app = Router::new().route("/json", get(|| async { r#"{"ok":true,"items":[1,2,3]}"# }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let raw = reqwest::Client::builder().no_proxy().build().unwrap();
    let resolver = StaticResolver::default().with("api.bench.test", &[addr.ip()]);
    let config = EgressConfig {
        allow_private_cidrs: vec!["127.0.0.1/32".parse().unwrap()],
        ..EgressConfig::default()
    };
    let egress = Egress::new(config, Arc::new(resolver)).unwrap();
    let mut secrets = SecretStore::default();
    secrets.insert(
        None,
        "KEY",
        Secret {
            value: "bench-secret".into(),
            hosts: vec!["api.bench.test".into()],
        },
    );

    let by_ip = format!("http://{addr}/json");
    let by_name = format!("http://api.bench.test:{}/json", addr.port());
    for round in 0..2 {
        let mut rows: Vec<(&str, Vec<Duration>)> = vec![];
        let mut times = vec![];
        for _ in 0..n {
            let t = Instant::now();
            let body = raw.get(&by_ip).send().await.unwrap().bytes().await.unwrap();
            assert!(!body.is_empty());
            times.push(t.elapsed());
        }
        rows.push(("plain reqwest, IP literal", times));
        for (label, url, with_secret) in [
            ("egress, IP literal", &by_ip, false),
            ("egress, name through the policy resolver", &by_name, false),
            (
                "egress, name, a secret header resolved and redacted",
                &by_name,
                true,
            ),
        ] {
            let mut times = vec![];
            for _ in 0..n {
                let headers = if with_secret {
                    vec![("X-Key".into(), "{{secrets.KEY}}".into())]
                } else {
                    vec![]
                };
                let request = HttpRequest {
                    headers,
                    ..HttpRequest::new("GET", url.clone())
                };
                let options = CallOptions {
                    deadline: Instant::now() + Duration::from_secs(5),
                    allowed_hosts: &[],
                    secrets: Some((&secrets, None)),
                };
                let t = Instant::now();
                let response = egress.send(request, options).await.unwrap();
                assert_eq!(response.status, 200);
                times.push(t.elapsed());
            }
            rows.push((label, times));
        }
        if round == 1 {
            for (label, times) in rows {
                summary(label, times);
            }
        }
    }
}
