//! The registry (KV bucket ACTIONS) end to end: `action-worker actions put/list/rm`, jobs that
//! name an action, updates reaching the next job, pinned revisions, tenant isolation, and
//! `submit` by name over both paths.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use serde_json::{Value, json};

use action_worker_tests as common;
use common::nats::{Nats, Worker, run_json};

/// Runs the CLI with `args` against `url`; returns (success, stdout, stderr).
async fn cli(config: &Path, args: &[&str]) -> (bool, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_action-worker"));
    command.arg("--config").arg(config).args(args);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run(client: &async_nats::Client, job: Value) -> Value {
    run_json(client, &job).await
}

fn greet(version: &str) -> String {
    format!("def execute_action(c):\n    return '{version} ' + c['args']['who']\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_serves_named_actions_per_tenant_and_follows_updates() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let extra = format!("[nats]\nurl = \"{}\"\n", nats.url);
    let worker = Worker::start(dir.path(), &extra).await;
    let config = dir.path().join("worker.toml");
    let client = async_nats::connect(&nats.url).await.unwrap();
    let script = dir.path().join("greet.py");

    // Not there yet.
    let job = |id: &str, tenant: Option<&str>| {
        let mut job = json!({"id": id, "action": {"name": "greet"}, "args": {"who": "ann"}});
        if let Some(tenant) = tenant {
            job["tenant"] = json!(tenant);
        }
        job
    };
    let result = run(&client, job("n0", None)).await;
    assert_eq!(result["status"], "rejected");
    assert_eq!(
        result["error"]["message"],
        "unknown action \"greet\": not in the registry for jobs without a tenant"
    );

    std::fs::write(&script, greet("v1")).unwrap();
    let (ok, out, err) = cli(&config, &["actions", "put", script.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "greet: revision 1");
    let result = run(&client, job("n1", None)).await;
    assert_eq!(result["output"], "v1 ann", "{result}");

    // An update changes what the next job runs.
    std::fs::write(&script, greet("v2")).unwrap();
    let (ok, out, _) = cli(&config, &["actions", "put", script.to_str().unwrap()]).await;
    assert!(ok);
    assert_eq!(out.trim(), "greet: revision 2");
    let result = run(&client, job("n2", None)).await;
    assert_eq!(result["output"], "v2 ann", "{result}");

    // A pinned revision runs that revision, from the bucket's history.
    let mut pinned = job("n3", None);
    pinned["action"]["revision"] = json!(1);
    let result = run(&client, pinned).await;
    assert_eq!(result["output"], "v1 ann", "{result}");
    let mut missing = job("n4", None);
    missing["action"]["revision"] = json!(99);
    let result = run(&client, missing).await;
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("revision 99 of action \"greet\" is not in the registry"),
        "{result}"
    );

    // Tenants: each sees its own key only, never another's nor the tenant-less one.
    std::fs::write(&script, greet("acme")).unwrap();
    let (ok, out, _) = cli(
        &config,
        &[
            "actions",
            "put",
            "--tenant",
            "acme",
            script.to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(out.trim(), "acme.greet: revision 3");
    let result = run(&client, job("t1", Some("acme"))).await;
    assert_eq!(result["output"], "acme ann", "{result}");
    let result = run(&client, job("t2", Some("globex"))).await;
    assert_eq!(result["status"], "rejected");
    assert_eq!(
        result["error"]["message"],
        "unknown action \"greet\": not in the registry for tenant \"globex\""
    );
    let result = run(&client, job("t3", None)).await;
    assert_eq!(result["output"], "v2 ann");
    // A dotted name would reach another tenant's key: refused before any lookup.
    let mut dotted = job("t5", None);
    dotted["action"]["name"] = json!("acme.greet");
    let result = run(&client, dotted).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("action.name"),
        "{result}"
    );
    let mut sneaky = job("t4", Some("acme.greet"));
    sneaky["tenant"] = json!("acme.x");
    let result = run(&client, sneaky).await;
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tenant:")
    );

    let (_, out, _) = cli(&config, &["actions", "list"]).await;
    assert!(out.starts_with("greet\trevision 2\tPython"), "{out}");
    assert!(!out.contains("acme"), "{out}");
    let (_, out, _) = cli(&config, &["actions", "list", "--tenant", "acme"]).await;
    assert!(out.starts_with("acme.greet\trevision 3"), "{out}");

    // By name through submit, both paths.
    let (ok, out, err) = cli(
        &config,
        &["submit", "greet", "--tenant", "acme", "--arg", "who=bo"],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["output"],
        "acme bo"
    );
    let (ok, out, err) = cli(
        &config,
        &[
            "submit",
            "greet",
            "--durable",
            "--id",
            "dur-1",
            "--arg",
            "who=cy",
        ],
    )
    .await;
    assert!(ok, "{out}{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["output"],
        "v2 cy"
    );

    // A value written past the CLI that is not a definition: rejected, saying so.
    let js = async_nats::jetstream::new(client.clone());
    let kv = js.get_key_value("ACTIONS").await.unwrap();
    kv.put("broken", "{\"name\": 1}".into()).await.unwrap();
    let mut broken = job("b1", None);
    broken["action"]["name"] = json!("broken");
    let result = run(&client, broken).await;
    assert_eq!(result["status"], "rejected");
    assert!(
        result["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the stored definition is not valid"),
        "{result}"
    );

    // Removed: the next job is rejected.
    let (ok, out, _) = cli(&config, &["actions", "rm", "greet"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "greet: removed");
    let result = run(&client, job("r1", None)).await;
    assert_eq!(result["status"], "rejected", "{result}");
    let (ok, _, err) = cli(&config, &["actions", "rm", "greet"]).await;
    assert!(!ok);
    assert!(err.contains("no action greet in the registry"), "{err}");
    // The tenant's own is untouched.
    let result = run(&client, job("r2", Some("acme"))).await;
    assert_eq!(result["output"], "acme ann");
    assert!(worker.terminate().await.success());
}
