//! Every limit of a job, proven by a script that trips it (SPEC §7).
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use action_protocol::{ErrorKind, LimitKind, Status};
use action_sandbox::{JobLimits, NoNetwork};
use common::{EchoHost, HangingHost, run, run_with};
use serde_json::json;

fn limit_of(outcome: &action_sandbox::RunOutcome) -> Option<LimitKind> {
    outcome.error.as_ref().and_then(|e| e.limit)
}

#[tokio::test]
async fn an_infinite_loop_stops_on_fuel() {
    let limits = JobLimits {
        fuel: 50_000_000,
        ..JobLimits::default()
    };
    let out = run_with(
        "def execute_action(c):\n    while True:\n        pass\n",
        json!({}),
        limits,
        Box::new(NoNetwork),
    )
    .await;
    assert_eq!(out.status, Status::LimitExceeded, "{out:?}");
    assert_eq!(limit_of(&out), Some(LimitKind::Fuel));
    assert_eq!(out.stats.fuel_used, 50_000_000);
    assert!(out.error.unwrap().message.contains("fuel"));
}

/// Ten seconds for what should take a fraction of one. A guest that never yields would hold
/// its thread for good, so these tests run their jobs on a thread and runtime of their own and
/// wait for them at most this long: they fail then, instead of hanging (the thread is left).
const NEVER: Duration = Duration::from_secs(10);

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn a_cpu_loop_with_fuel_to_spare_stops_on_wall_time() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let limits = JobLimits {
            fuel: u64::MAX / 4,
            timeout: Duration::from_millis(300),
            ..JobLimits::default()
        };
        let out = current_thread_runtime().block_on(run_with(
            "def execute_action(c):\n    while True:\n        pass\n",
            json!({}),
            limits,
            Box::new(NoNetwork),
        ));
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(NEVER)
        .expect("the job ran on past its deadline: it never yielded to have it looked at");
    assert_eq!(limit_of(&out), Some(LimitKind::Time), "{out:?}");
}

/// Tells the test when the script has started (its first `requests.get`).
struct Started(Option<tokio::sync::oneshot::Sender<()>>);

impl action_sandbox::ActionHost for Started {
    fn http_send(
        &mut self,
        request: action_sandbox::HttpRequest,
        _deadline: Instant,
    ) -> action_sandbox::BoxFuture<
        '_,
        Result<action_sandbox::HttpResponse, action_sandbox::HttpError>,
    > {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
        Box::pin(async move {
            Ok(action_sandbox::HttpResponse {
                status: 200,
                reason: "OK".into(),
                url: request.url,
                headers: vec![],
                body: b"{}".to_vec(),
                elapsed: Duration::ZERO,
                secrets: vec![],
            })
        })
    }
}

/// A computing job yields every ~5 ms of its CPU (the sandbox's `YIELD_FUEL`): that is where
/// its deadline is looked at, and it leaves room for other jobs on the same thread. Both jobs
/// run on one single-threaded runtime; the quick one starts once the hog computes.
#[test]
fn a_computing_job_yields_to_other_jobs_on_its_thread() {
    let (quick_tx, quick_rx) = std::sync::mpsc::channel();
    let (hog_tx, hog_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        current_thread_runtime().block_on(async move {
            let (tx, started) = tokio::sync::oneshot::channel();
            let hog = tokio::spawn(run_with(
                "import requests\ndef execute_action(c):\n    requests.get('https://api.example.com/started')\n    while True:\n        pass\n",
                json!({}),
                JobLimits {
                    timeout: Duration::from_secs(3),
                    ..JobLimits::default()
                },
                Box::new(Started(Some(tx))),
            ));
            started.await.unwrap();
            let quick = run("def execute_action(c):\n    return 1\n").await;
            let _ = quick_tx.send((quick, hog.is_finished()));
            let _ = hog_tx.send(hog.await.unwrap());
        });
    });
    let (quick, hog_finished) = quick_rx
        .recv_timeout(NEVER)
        .expect("the quick job never ran: the hog held the thread");
    assert_eq!(quick.output, json!(1), "{quick:?}");
    assert!(
        !hog_finished,
        "the quick job only ran once the hog had ended"
    );
    // Time or fuel, whichever this machine reaches first: the default fuel is ~2 s of CPU on
    // the reference machine.
    let hog = hog_rx.recv_timeout(NEVER).unwrap();
    assert!(
        matches!(limit_of(&hog), Some(LimitKind::Time | LimitKind::Fuel)),
        "{hog:?}"
    );
}

#[tokio::test]
async fn a_script_waiting_on_a_host_call_forever_stops_on_wall_time() {
    let limits = JobLimits {
        timeout: Duration::from_millis(300),
        ..JobLimits::default()
    };
    let source = "import requests\ndef execute_action(c):\n    return requests.get('https://api.example.com/slow').text\n";
    common::sandbox();
    let started = Instant::now();
    let out = run_with(source, json!({}), limits, Box::new(HangingHost)).await;
    assert_eq!(out.status, Status::LimitExceeded, "{out:?}");
    assert_eq!(limit_of(&out), Some(LimitKind::Time));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(out.stats.http_calls, 1);
}

#[tokio::test]
async fn sleeping_past_the_deadline_stops_on_wall_time() {
    let limits = JobLimits {
        timeout: Duration::from_millis(300),
        ..JobLimits::default()
    };
    let source = "import time\ndef execute_action(c):\n    time.sleep(60)\n    return 1\n";
    common::sandbox();
    let started = Instant::now();
    let out = run_with(source, json!({}), limits, Box::new(NoNetwork)).await;
    assert_eq!(limit_of(&out), Some(LimitKind::Time), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_memory_bomb_stops_on_memory() {
    let limits = JobLimits {
        memory_bytes: 96 << 20,
        ..JobLimits::default()
    };
    for source in [
        "def execute_action(c):\n    return len('x' * (1 << 30))\n",
        "def execute_action(c):\n    hoard = []\n    while True:\n        hoard.append(bytearray(1 << 20))\n",
    ] {
        let out = run_with(source, json!({}), limits, Box::new(NoNetwork)).await;
        assert_eq!(out.status, Status::LimitExceeded, "{source}: {out:?}");
        assert_eq!(limit_of(&out), Some(LimitKind::Memory));
        assert!(out.stats.memory_peak_bytes <= 96 << 20);
    }
}

#[tokio::test]
async fn memory_within_the_limit_is_fine() {
    let out = run("def execute_action(c):\n    return len(bytearray(32 << 20))\n").await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    assert_eq!(out.output, json!(32 << 20));
    assert!(out.stats.memory_peak_bytes > 32 << 20);
}

#[tokio::test]
async fn unbounded_recursion_is_a_clean_error() {
    let out =
        run("def f(n):\n    return f(n + 1)\n\ndef execute_action(c):\n    return f(0)\n").await;
    match out.status {
        Status::ActionError => {
            let error = out.error.unwrap();
            assert_eq!(error.kind, ErrorKind::Exception);
            assert!(
                error.message.starts_with("RecursionError"),
                "{}",
                error.message
            );
        }
        Status::LimitExceeded => assert_eq!(limit_of(&out), Some(LimitKind::Stack)),
        other => panic!("unexpected {other:?}: {out:?}"),
    }
    // The worker carries on.
    assert_eq!(
        run("def execute_action(c):\n    return 'still here'\n")
            .await
            .output,
        json!("still here")
    );
}

#[tokio::test]
async fn deep_recursion_in_c_code_is_a_clean_error() {
    // json.dumps of a deeply nested list recurses in C, not in Python frames.
    let source = "import json\ndef execute_action(c):\n    x = []\n    for _ in range(200000):\n        x = [x]\n    return len(json.dumps(x))\n";
    let out = run(source).await;
    assert!(
        matches!(out.status, Status::ActionError | Status::LimitExceeded),
        "{out:?}"
    );
    assert_ne!(out.status, Status::Failed);
}

#[tokio::test]
async fn a_print_flood_is_truncated_and_flagged() {
    let limits = JobLimits {
        log_bytes: 1000,
        ..JobLimits::default()
    };
    let source = "import sys\ndef execute_action(c):\n    for i in range(20000):\n        print('line', i)\n        print('err', i, file=sys.stderr)\n    return 'done'\n";
    let out = run_with(source, json!({}), limits, Box::new(NoNetwork)).await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    assert!(out.logs.truncated);
    assert!(out.logs.stdout.len() + out.logs.stderr.len() <= 1000);
    assert!(out.logs.stdout.starts_with("line 0\n"));
    let quiet = run("def execute_action(c):\n    print('hello')\n    return 1\n").await;
    assert_eq!(quiet.logs.stdout, "hello\n");
    assert!(!quiet.logs.truncated);
}

#[tokio::test]
async fn an_oversized_output_is_refused() {
    let limits = JobLimits {
        output_bytes: 1 << 20,
        ..JobLimits::default()
    };
    let out = run_with(
        "def execute_action(c):\n    return 'x' * (2 << 20)\n",
        json!({}),
        limits,
        Box::new(NoNetwork),
    )
    .await;
    assert_eq!(out.status, Status::LimitExceeded, "{out:?}");
    assert_eq!(limit_of(&out), Some(LimitKind::Output));
    assert_eq!(out.output, serde_json::Value::Null);
}

#[tokio::test]
async fn the_http_call_cap_stops_the_call_after_the_last_allowed() {
    let limits = JobLimits {
        max_http_calls: 25,
        ..JobLimits::default()
    };
    let source = "import requests\ndef execute_action(c):\n    n = 0\n    for i in range(30):\n        requests.get(f'https://api.example.com/{i}')\n        n += 1\n    return n\n";
    let out = run_with(source, json!({}), limits, Box::new(EchoHost)).await;
    assert_eq!(limit_of(&out), Some(LimitKind::HttpCalls), "{out:?}");
    assert_eq!(out.stats.http_calls, 25);
    let source = "import requests\ndef execute_action(c):\n    return [requests.get(f'https://api.example.com/{i}').json()['url'] for i in range(25)][-1]\n";
    let out = run_with(source, json!({}), limits, Box::new(EchoHost)).await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    assert_eq!(out.output, json!("https://api.example.com/24"));
}

#[tokio::test]
async fn a_script_cannot_swallow_a_limit() {
    // The trap unwinds through Python without running its handlers.
    let limits = JobLimits {
        fuel: 30_000_000,
        ..JobLimits::default()
    };
    let source = "def execute_action(c):\n    try:\n        while True:\n            pass\n    except BaseException:\n        return 'caught'\n    finally:\n        return 'finally'\n";
    let out = run_with(source, json!({}), limits, Box::new(NoNetwork)).await;
    assert_eq!(limit_of(&out), Some(LimitKind::Fuel), "{out:?}");
}
