//! The egress policy against real HTTP servers on loopback: SSRF matrix, redirects, caps.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use action_egress::{CallOptions, Egress, EgressConfig, StaticResolver, SystemResolver};
use action_protocol::{HttpError, HttpErrorKind, HttpRequest, HttpResponse};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

async fn serve(bind: &str) -> SocketAddr {
    let app =
        Router::new()
            .route(
                "/json",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        r#"{"ok":true}"#,
                    )
                }),
            )
            .route(
                "/headers",
                get(|headers: HeaderMap| async move {
                    let map: HashMap<String, String> = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                        .collect();
                    axum::Json(map)
                }),
            )
            .route(
                "/redirect-to",
                get(|Query(q): Query<HashMap<String, String>>| async move {
                    Redirect::temporary(&q["url"])
                }),
            )
            .route(
                "/loop/{n}",
                get(|Path(n): Path<u32>| async move {
                    Redirect::temporary(&format!("/loop/{}", n + 1))
                }),
            )
            .route(
                "/hops/{n}",
                get(|Path(n): Path<u32>| async move {
                    if n == 0 {
                        Redirect::temporary("/json").into_response()
                    } else {
                        Redirect::temporary(&format!("/hops/{}", n - 1)).into_response()
                    }
                }),
            )
            .route(
                "/big",
                get(|Query(q): Query<HashMap<String, String>>| async move {
                    let total: usize = q["n"].parse().unwrap();
                    let chunk = vec![b'x'; 64 << 10];
                    let stream = futures_util::stream::iter((0..total.div_ceil(chunk.len())).map(
                        move |_| Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk.clone())),
                    ));
                    Response::builder()
                        .status(StatusCode::OK)
                        .body(Body::from_stream(stream))
                        .unwrap()
                }),
            )
            .route(
                "/big-declared",
                get(|| async { ([(header::CONTENT_TYPE, "text/plain")], vec![b'y'; 6 << 20]) }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
    let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn egress(allow: &[&str], resolver: StaticResolver) -> Egress {
    let config = EgressConfig {
        allow_private_cidrs: allow.iter().map(|c| c.parse().unwrap()).collect(),
        ..EgressConfig::default()
    };
    Egress::new(config, Arc::new(resolver)).unwrap()
}

fn get_req(url: &str) -> HttpRequest {
    HttpRequest::new("GET", url)
}

async fn send(egress: &Egress, request: HttpRequest) -> Result<HttpResponse, HttpError> {
    let options = CallOptions {
        deadline: Instant::now() + Duration::from_secs(10),
        allowed_hosts: &[],
        secrets: None,
    };
    egress.send(request, options).await
}

fn denied_rule(result: Result<HttpResponse, HttpError>) -> String {
    match result {
        Err(HttpError {
            kind: HttpErrorKind::Denied,
            rule: Some(rule),
            message,
        }) => {
            assert!(
                message.contains("egress") || message.contains("allowed_hosts"),
                "{message}"
            );
            rule
        }
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn the_ssrf_matrix_is_denied_before_connecting() {
    let server = serve("127.0.0.1:0").await;
    let port = server.port();
    let plain = egress(
        &[],
        StaticResolver::default().with("public-looking.example", &["127.0.0.1".parse().unwrap()]),
    );
    for (url, rule) in [
        (format!("http://127.0.0.1:{port}/json"), "loopback"),
        (format!("http://0.0.0.0:{port}/json"), "unspecified"),
        (format!("http://[::1]:{port}/json"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/json"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "link-local",
        ),
        ("http://10.0.0.1/".to_string(), "private"),
        (format!("http://2130706433:{port}/json"), "loopback"),
        (format!("http://0177.0.0.1:{port}/json"), "loopback"),
        (format!("http://0x7f.1:{port}/json"), "loopback"),
        (
            format!("http://public-looking.example:{port}/json"),
            "loopback",
        ),
    ] {
        assert_eq!(
            denied_rule(send(&plain, get_req(&url)).await),
            rule,
            "{url}"
        );
    }
    let system = Egress::new(EgressConfig::default(), Arc::new(SystemResolver)).unwrap();
    assert_eq!(
        denied_rule(send(&system, get_req(&format!("http://localhost:{port}/json"))).await),
        "loopback"
    );
    assert_eq!(
        denied_rule(send(&plain, get_req("ftp://example.com/")).await),
        "scheme"
    );

    // The same server, opened on purpose, works.
    let open = egress(
        &["127.0.0.1/32"],
        StaticResolver::default().with("public-looking.example", &["127.0.0.1".parse().unwrap()]),
    );
    let response = send(
        &open,
        get_req(&format!("http://public-looking.example:{port}/json")),
    )
    .await
    .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, br#"{"ok":true}"#);
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_checked_again() {
    let public = serve("127.0.0.1:0").await;
    let internal = serve("127.0.0.2:0").await;
    let url = format!(
        "http://127.0.0.1:{}/redirect-to?url=http://127.0.0.2:{}/json",
        public.port(),
        internal.port()
    );
    let only_public = egress(&["127.0.0.1/32"], StaticResolver::default());
    assert_eq!(
        denied_rule(send(&only_public, get_req(&url)).await),
        "loopback"
    );
    let both = egress(&["127.0.0.0/8"], StaticResolver::default());
    let response = send(&both, get_req(&url)).await.unwrap();
    assert_eq!(response.status, 200);
    assert!(response.url.contains("127.0.0.2"), "{}", response.url);
}

#[tokio::test]
async fn credentials_are_dropped_when_a_redirect_changes_host() {
    let a = serve("127.0.0.1:0").await;
    let b = serve("127.0.0.2:0").await;
    let egress = egress(&["127.0.0.0/8"], StaticResolver::default());
    let with_auth = |url: String| HttpRequest {
        headers: vec![
            ("Authorization".into(), "Bearer k".into()),
            ("Cookie".into(), "s=1".into()),
            ("X-Other".into(), "kept".into()),
        ],
        ..get_req(&url)
    };
    let elsewhere = format!(
        "http://127.0.0.1:{}/redirect-to?url=http://127.0.0.2:{}/headers",
        a.port(),
        b.port()
    );
    let seen: HashMap<String, String> =
        serde_json::from_slice(&send(&egress, with_auth(elsewhere)).await.unwrap().body).unwrap();
    assert!(
        !seen.contains_key("authorization") && !seen.contains_key("cookie"),
        "{seen:?}"
    );
    assert_eq!(seen["x-other"], "kept");
    let same = format!("http://127.0.0.1:{}/redirect-to?url=/headers", a.port());
    let seen: HashMap<String, String> =
        serde_json::from_slice(&send(&egress, with_auth(same)).await.unwrap().body).unwrap();
    assert_eq!(seen["authorization"], "Bearer k");
}

#[tokio::test]
async fn redirects_stop_after_five() {
    let server = serve("127.0.0.1:0").await;
    let egress = egress(&["127.0.0.1/32"], StaticResolver::default());
    let ok = send(
        &egress,
        get_req(&format!("http://127.0.0.1:{}/hops/4", server.port())),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "five redirects are followed");
    let result = send(
        &egress,
        get_req(&format!("http://127.0.0.1:{}/loop/0", server.port())),
    )
    .await;
    assert!(
        matches!(&result, Err(e) if e.kind == HttpErrorKind::TooManyRedirects),
        "{result:?}"
    );
    let manual = HttpRequest {
        follow_redirects: false,
        ..get_req(&format!("http://127.0.0.1:{}/loop/0", server.port()))
    };
    assert_eq!(send(&egress, manual).await.unwrap().status, 307);
}

#[tokio::test]
async fn a_large_response_is_stopped_at_the_cap() {
    let server = serve("127.0.0.1:0").await;
    let egress = egress(&["127.0.0.1/32"], StaticResolver::default());
    let started = Instant::now();
    let result = send(
        &egress,
        get_req(&format!(
            "http://127.0.0.1:{}/big?n={}",
            server.port(),
            50 << 20
        )),
    )
    .await;
    assert!(
        matches!(&result, Err(e) if e.kind == HttpErrorKind::ResponseTooLarge
            && e.message.ends_with(&format!("the limit of {} bytes", 5 << 20))),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let result = send(
        &egress,
        get_req(&format!("http://127.0.0.1:{}/big-declared", server.port())),
    )
    .await;
    assert!(
        matches!(&result, Err(e) if e.kind == HttpErrorKind::ResponseTooLarge),
        "{result:?}"
    );
    let small = send(
        &egress,
        get_req(&format!(
            "http://127.0.0.1:{}/big?n={}",
            server.port(),
            1 << 20
        )),
    )
    .await
    .unwrap();
    assert_eq!(small.body.len(), 1 << 20);
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_timeout() {
    let server = serve("127.0.0.1:0").await;
    let egress = egress(&["127.0.0.1/32"], StaticResolver::default());
    let url = format!("http://127.0.0.1:{}/slow", server.port());
    let started = Instant::now();
    let options = CallOptions {
        deadline: Instant::now() + Duration::from_secs(10),
        allowed_hosts: &[],
        secrets: None,
    };
    let timed = HttpRequest {
        timeout: Some(Duration::from_millis(300)),
        ..get_req(&url)
    };
    let result = egress.send(timed, options).await;
    assert!(
        matches!(&result, Err(e) if e.kind == HttpErrorKind::Timeout),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The job's deadline bounds the call even without a timeout of its own.
    let options = CallOptions {
        deadline: Instant::now() + Duration::from_millis(300),
        allowed_hosts: &[],
        secrets: None,
    };
    assert!(matches!(
        egress.send(get_req(&url), options).await,
        Err(e) if e.kind == HttpErrorKind::Timeout
    ));
}

#[tokio::test]
async fn allowed_hosts_narrow_what_an_action_reaches() {
    let server = serve("127.0.0.1:0").await;
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let egress = egress(
        &["127.0.0.1/32"],
        StaticResolver::default()
            .with("api.shop.test", &[ip])
            .with("evil.test", &[ip]),
    );
    let allowed = vec!["*.shop.test".to_string()];
    let options = CallOptions {
        deadline: Instant::now() + Duration::from_secs(10),
        allowed_hosts: &allowed,
        secrets: None,
    };
    let ok = egress
        .send(
            get_req(&format!("http://api.shop.test:{}/json", server.port())),
            options,
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let denied = egress
        .send(
            get_req(&format!("http://evil.test:{}/json", server.port())),
            options,
        )
        .await;
    assert_eq!(denied_rule(denied), "allowed_hosts");
}
