//! The journal against a real nats-server and real worker processes: a durable job whose
//! worker dies between two outside calls is redelivered and does not make its first call
//! again (HTTP, LLM, Google Sheets); a worker that dies after sending and before journaling
//! re-sends with the same `Idempotency-Key`; a run that asks for another call than the
//! journal holds goes live from there; no secret value is ever in a journal.
//!
//! The worker is stopped at a chosen call by the test hook `ACTION_WORKER_HALT_AT`
//! (`guard::halt`, compiled into test builds only): it exits there, as a killed worker would.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::{get, post};
use serde_json::{Value, json};

use action_worker_tests as common;
use common::nats::{Nats, Worker, submit_json};

/// Every request an upstream saw: method, path and query, and its `Idempotency-Key`.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A loopback upstream that answers every request with what it saw (the `X-Api-Key`
/// header echoed, so that a secret comes back in a body), and counts them.
async fn upstream() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .fallback(
            |State(seen): State<Seen>, method: Method, uri: Uri, headers: HeaderMap| async move {
                let key = headers
                    .get("idempotency-key")
                    .map(|v| v.to_str().unwrap().to_string());
                let call = format!("{method} {uri}");
                let mut seen = seen.lock().unwrap();
                seen.push((call.clone(), key));
                let echoed = headers
                    .get("x-api-key")
                    .map(|v| v.to_str().unwrap().to_string());
                axum::Json(json!({"call": call, "n": seen.len(), "key": echoed}))
            },
        )
        .with_state(seen.clone());
    (common::serve(app, "127.0.0.1:0").await, seen)
}

fn count(seen: &Seen, call: &str) -> usize {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == call)
        .count()
}

/// A provider of the chat-completions protocol that picks the first option, counting calls.
async fn llm_provider() -> (SocketAddr, Arc<Mutex<usize>>) {
    let calls = Arc::new(Mutex::new(0));
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(
                |State(calls): State<Arc<Mutex<usize>>>, axum::Json(request): axum::Json<Value>| async move {
                    *calls.lock().unwrap() += 1;
                    let options = &request["response_format"]["json_schema"]["schema"]["properties"]["answer"]["enum"];
                    let content = json!({"answer": options[0]}).to_string();
                    axum::Json(json!({
                        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_790_000_000, "model": "m",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
                    }))
                },
            ),
        )
        .with_state(calls.clone());
    (common::serve(app, "127.0.0.1:0").await, calls)
}

/// Google's token exchange and Sheets `values.get`/`values.append`, counting appends (the
/// JWT itself is checked in tests/sheets.rs).
async fn google() -> (SocketAddr, Arc<Mutex<usize>>) {
    let appends = Arc::new(Mutex::new(0));
    let app = Router::new()
        .route(
            "/token",
            post(|| async {
                axum::Json(json!({"access_token": "ya29.t", "expires_in": 3599, "token_type": "Bearer"}))
            }),
        )
        .route(
            "/v4/spreadsheets/{id}/values/{range}",
            get(|| async { axum::Json(json!({"range": "Sheet1!A1:B1", "values": [["Name", "Amount"]]})) })
                .post(|State(appends): State<Arc<Mutex<usize>>>| async move {
                    let mut appends = appends.lock().unwrap();
                    *appends += 1;
                    let row = 1 + *appends;
                    axum::Json(json!({"updates": {"updatedRange": format!("Sheet1!A{row}:B{row}"), "updatedRows": 1}}))
                }),
        )
        .with_state(appends.clone());
    (common::serve(app, "127.0.0.1:0").await, appends)
}

/// `worker.toml` keys for a worker on `url` (`extra`: more `[nats]` keys, or tables) with
/// the secrets `ERP_KEY` (tenant `acme`) and
/// `LLM_KEY`, their file in `dir`.
fn config(dir: &Path, url: &str, extra: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let secrets = dir.join("secrets.toml");
    std::fs::write(
        &secrets,
        "[[secret]]\nname = \"ERP_KEY\"\ntenant = \"acme\"\nhosts = [\"127.0.0.1\"]\nvalue = \"erp-secret-value-8472\"\n\
         [[secret]]\nname = \"LLM_KEY\"\nhosts = [\"127.0.0.1\"]\nvalue = \"llm-key\"\n",
    )
    .unwrap();
    format!(
        "[nats]\nurl = \"{url}\"\nack_wait_ms = 2000\nmax_concurrent_jobs = 4\n{extra}\n[secrets]\nfile = \"{}\"\n",
        secrets.display()
    )
}

async fn wait_stored(js: &jetstream::Context, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(stream) = js.get_stream("ACTIONS_RESULTS").await
            && let Ok(message) = stream
                .direct_get_last_for_subject(format!("actions.results.{id}"))
                .await
        {
            return serde_json::from_slice(&message.payload).unwrap();
        }
        assert!(Instant::now() < deadline, "no result for {id}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every payload in stream `ACTIONS_JOURNAL`, as text.
async fn journal_text(js: &jetstream::Context) -> String {
    let mut stream = js.get_stream("ACTIONS_JOURNAL").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut text = String::new();
    for sequence in 1..=last {
        if let Ok(message) = stream.direct_get(sequence).await {
            text.push_str(&String::from_utf8_lossy(&message.payload));
            text.push('\n');
        }
    }
    text
}

/// Runs `code` as the durable job `id` on a worker that stops at `halt` (`call:N`,
/// `sent:N`), then on a second worker, and returns the stored result.
async fn run_across_a_halt(
    dir: &Path,
    id: &str,
    code: &str,
    extra: &str,
    halt: &str,
) -> (Value, jetstream::Context, Nats) {
    let nats = Nats::start(&dir.join("nats")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client);
    let config = config(&dir.join("secrets"), &nats.url, extra);
    let mut first =
        Worker::start_with_env(&dir.join("a"), &config, &[("ACTION_WORKER_HALT_AT", halt)]).await;
    let job = json!({"id": id, "tenant": "acme", "action": {"name": "pay", "type": "python", "python": {"code": code}}});
    submit_json(&js, "actions.jobs.acme", &job).await;
    let exit = tokio::time::timeout(Duration::from_secs(30), first.child.wait())
        .await
        .expect("the first worker stops at the halt")
        .unwrap();
    assert_eq!(exit.code(), Some(137), "the first worker halted");
    let _second = Worker::start(&dir.join("b"), &config).await;
    let result = wait_stored(&js, id).await;
    (result, js, nats)
}

fn charge_then(addr: SocketAddr, second: &str) -> String {
    format!(
        r#"
import requests
def execute_action(context):
    charge = requests.post("http://{addr}/charge", json={{"amount": 5}},
                           headers={{"X-Api-Key": "{{{{secrets.ERP_KEY}}}}"}}).json()
    {second}
    after = requests.get("http://{addr}/next").json()
    return {{"charge": charge, "after": after}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_killed_between_two_calls_does_not_charge_twice_and_no_secret_is_journaled() {
    let (addr, seen) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let code = charge_then(addr, "pass");
    let (result, js, _nats) =
        run_across_a_halt(dir.path(), "pay-halt-me-1", &code, "", "call:1").await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(count(&seen, "POST /charge"), 1, "the charge was made once");
    assert_eq!(count(&seen, "GET /next"), 1);
    assert_eq!(result["attempt"], 2);
    assert_eq!(result["trace"][0]["journal"], "replayed", "{result}");
    assert!(result["trace"][1].get("journal").is_none(), "{result}");
    // The answer the second delivery saw is the first delivery's, as journaled.
    assert_eq!(result["output"]["charge"]["n"], 1);
    assert_eq!(result["output"]["charge"]["key"], "[secret:ERP_KEY]");
    let journal = journal_text(&js).await;
    assert!(journal.contains("/charge"), "{journal}");
    assert!(
        !journal.contains("erp-secret-value-8472"),
        "a secret value in the journal"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_dies_after_sending_resends_with_the_same_key() {
    let (addr, seen) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let code = charge_then(addr, "pass");
    let (result, _js, _nats) =
        run_across_a_halt(dir.path(), "pay-halt-me-2", &code, "", "sent:0").await;
    assert_eq!(result["status"], "ok", "{result}");
    let charges: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(c, _)| c == "POST /charge")
        .map(|(_, key)| key.clone())
        .collect();
    assert_eq!(charges.len(), 2, "sent, never journaled: sent again");
    assert_eq!(charges[0], Some("pay-halt-me-2:0".into()));
    assert_eq!(charges[0], charges[1], "with the same Idempotency-Key");
    assert_eq!(result["trace"][0]["journal"], "re-sent", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_diverges_from_the_journal_goes_live_from_there() {
    let (addr, seen) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let second = format!(
        r#"requests.get("http://{addr}/look", params={{"attempt": context["job"]["attempt"]}})"#
    );
    let code = charge_then(addr, &second);
    let (result, _js, _nats) =
        run_across_a_halt(dir.path(), "pay-halt-me-3", &code, "", "call:2").await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        count(&seen, "POST /charge"),
        1,
        "before the divergence: from the journal"
    );
    assert_eq!(count(&seen, "GET /look?attempt=1"), 1);
    assert_eq!(
        count(&seen, "GET /look?attempt=2"),
        1,
        "the divergent call went out"
    );
    let notes: Vec<_> = result["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.get("journal").cloned().unwrap_or(Value::Null))
        .collect();
    assert_eq!(
        notes,
        vec![json!("replayed"), json!("diverged"), Value::Null],
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_llm_classification_is_not_asked_twice() {
    let (addr, seen) = upstream().await;
    let (llm, calls) = llm_provider().await;
    let dir = tempfile::tempdir().unwrap();
    let code = format!(
        r#"
import requests
def execute_action(context):
    team = llm_classify_category("Which team?", "late parcel", ["shipping", "billing"])
    after = requests.get("http://{addr}/next").json()
    return {{"team": team, "after": after}}
"#
    );
    let extra = format!(
        "[llm]\nbase_url = \"http://{llm}/v1\"\nmodel = \"m\"\napi_key_secret = \"LLM_KEY\"\n"
    );
    let (result, _js, _nats) =
        run_across_a_halt(dir.path(), "llm-halt-me", &code, &extra, "call:1").await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"]["team"], "shipping");
    assert_eq!(
        *calls.lock().unwrap(),
        1,
        "the classification was asked once"
    );
    assert_eq!(count(&seen, "GET /next"), 1);
    assert_eq!(result["trace"][0]["kind"], "llm");
    assert_eq!(result["trace"][0]["journal"], "replayed", "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sheets_row_is_not_appended_twice() {
    let (addr, seen) = upstream().await;
    let (google, appends) = google().await;
    let dir = tempfile::tempdir().unwrap();
    let code = format!(
        r#"
import requests
def execute_action(context):
    row = add_google_sheets_row("sheet-1", {{"Name": "Maria", "Amount": 3}})
    after = requests.get("http://{addr}/next").json()
    return {{"row": row, "after": after}}
"#
    );
    let account =
        common::repo_root().join("crates/worker/tests/fixtures/test-service-account.json");
    let extra = format!(
        "[sheets]\nservice_account_file = \"{}\"\nbase_url = \"http://{google}\"\ntoken_url = \"http://{google}/token\"\n",
        account.display()
    );
    let (result, _js, _nats) =
        run_across_a_halt(dir.path(), "row-halt-me", &code, &extra, "call:1").await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(*appends.lock().unwrap(), 1, "the row was appended once");
    assert_eq!(result["output"]["row"]["updatedRange"], "Sheet1!A2:B2");
    assert_eq!(count(&seen, "GET /next"), 1);
    assert_eq!(result["trace"][0]["journal"], "replayed", "{result}");
}

/// `action-worker --config CONFIG replay ARGS…` off the async runtime: exit code and stdout.
async fn replay_cli(config: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let mut command = std::process::Command::new(common::worker_binary());
    command.arg("--config").arg(config).arg("replay").args(args);
    command.env("ACTION_WORKER_LOG", "error");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| json!({"stderr": String::from_utf8_lossy(&out.stderr).into_owned()}));
    (out.status.code(), value)
}

/// A script whose result holds everything a run draws from outside the script: clocks,
/// randomness (`random`, `uuid`, `os.urandom`, `secrets`) and an HTTP answer.
fn drawing_script(addr: SocketAddr) -> String {
    format!(
        r#"
import datetime, os, random, secrets, time, uuid
import requests
def execute_action(context):
    started = time.monotonic()
    charge = requests.post("http://{addr}/charge", json={{"amount": 5}}).json()
    return {{
        "charge": charge, "now": time.time(), "today": datetime.datetime.now().isoformat(),
        "random": random.random(), "uuid": str(uuid.uuid4()), "bytes": os.urandom(8).hex(),
        "token": secrets.token_hex(4), "took": time.monotonic() - started,
    }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reproduces_a_stored_result_and_runs_a_new_version_against_the_recorded_answers() {
    let (addr, seen) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let config = config(&dir.path().join("secrets"), &nats.url, "");
    let worker = Worker::start(&dir.path().join("w"), &config).await;
    let job = json!({"id": "draws-1", "tenant": "acme", "action": {"name": "pay", "type": "python", "python": {"code": drawing_script(addr)}}});
    submit_json(&js, "actions.jobs.acme", &job).await;
    let stored = wait_stored(&js, "draws-1").await;
    assert_eq!(stored["status"], "ok", "{stored}");
    let config_file = dir.path().join("w/worker.toml");

    let (code, replayed) = replay_cli(&config_file, &["draws-1"]).await;
    assert_eq!(code, Some(0), "{replayed}");
    assert_eq!(replayed["same"], true, "{replayed}");
    // Byte for byte: the output's JSON text is the stored one's.
    assert_eq!(
        replayed["result"]["output"].to_string(),
        stored["output"].to_string()
    );
    assert_eq!(replayed["result"]["trace"][0]["journal"], "replayed");
    assert_eq!(count(&seen, "POST /charge"), 1, "a replay sends nothing");

    let fixed = dir.path().join("pay.py");
    std::fs::write(
        &fixed,
        format!(
            "import requests, time\ndef execute_action(context):\n    charge = requests.post(\"http://{addr}/charge\", json={{\"amount\": 5}}).json()\n    late = requests.get(\"http://{addr}/late\")\n    return {{\"n\": charge[\"n\"] * 10}}\n"
        ),
    )
    .unwrap();
    let (code, changed) = replay_cli(
        &config_file,
        &["draws-1", "--action", fixed.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, Some(1), "{changed}");
    assert_eq!(changed["same"], false);
    // The fix ran on the recorded answer; the call the journal lacks was refused, not sent.
    assert_eq!(changed["result"]["status"], "action_error", "{changed}");
    assert_eq!(
        changed["result"]["trace"][1]["journal"], "refused",
        "{changed}"
    );
    assert!(
        changed["differences"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == "/status")
    );
    assert_eq!(count(&seen, "POST /charge"), 1);
    assert_eq!(count(&seen, "GET /late"), 0);

    let (code, missing) = replay_cli(&config_file, &["no-such-job"]).await;
    assert_eq!(code, Some(2));
    assert!(
        missing["stderr"]
            .as_str()
            .unwrap()
            .contains("no journal for job \"no-such-job\""),
        "{missing}"
    );

    // Over NATS, as a dashboard would: a test job naming the job to replay.
    let ask = |tenant: &str| json!({"id": "r-1", "tenant": tenant, "replay": "draws-1", "action": {"name": "pay"}});
    let reply = client
        .request("actions.test", ask("acme").to_string().into())
        .await
        .unwrap();
    let over_nats: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(over_nats["replay"]["same"], true, "{over_nats}");
    assert_eq!(over_nats["test"], true);
    assert_eq!(
        over_nats["output"].to_string(),
        stored["output"].to_string()
    );
    let reply = client
        .request("actions.test", ask("globex").to_string().into())
        .await
        .unwrap();
    let other: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(
        other["status"], "rejected",
        "another tenant's job is not found: {other}"
    );
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_jobs_are_recorded_only_on_demand() {
    let (addr, seen) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let config = config(&dir.path().join("secrets"), &nats.url, "");
    let _worker = Worker::start(&dir.path().join("w"), &config).await;
    let code = drawing_script(addr);
    for (id, record) in [("rr-plain", false), ("rr-recorded", true)] {
        let job = json!({"id": id, "record": record, "action": {"name": "pay", "type": "python", "python": {"code": code}}});
        let result = common::nats::run_json(&client, &job).await;
        assert_eq!(result["status"], "ok", "{result}");
    }
    assert_eq!(count(&seen, "POST /charge"), 2);
    let replay = |of: &str| json!({"id": "r", "replay": of, "action": {"name": "pay"}});
    let reply = client
        .request("actions.test", replay("rr-recorded").to_string().into())
        .await
        .unwrap();
    let replayed: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(replayed["status"], "ok", "{replayed}");
    assert_eq!(
        replayed["replay"]["same"], false,
        "no stored result to compare: {replayed}"
    );
    assert_eq!(replayed["trace"][0]["journal"], "replayed");
    let reply = client
        .request("actions.test", replay("rr-plain").to_string().into())
        .await
        .unwrap();
    let unrecorded: Value = serde_json::from_slice(&reply.payload).unwrap();
    assert_eq!(unrecorded["status"], "rejected", "{unrecorded}");
    assert!(
        unrecorded["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only when recorded")
    );
    assert_eq!(count(&seen, "POST /charge"), 2, "replays send nothing");
}

/// The workflow engine's side of `conversation_id`: answers `actions.conversations.get`.
async fn engine(client: async_nats::Client) {
    let mut requests = client.subscribe("actions.conversations.get").await.unwrap();
    tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(message) = requests.next().await {
            let asked: Value = serde_json::from_slice(&message.payload).unwrap();
            let answer = if asked == json!({"tenant": "acme", "conversation_id": "c-1"}) {
                json!({"id": "c-1", "metadata": {"plan": "gold"}, "tags": ["vip"]})
            } else {
                json!({"error": "no such conversation"})
            };
            client
                .publish(message.reply.unwrap(), answer.to_string().into())
                .await
                .unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_names_its_conversation_by_id_and_the_engine_answers() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let config = config(
        &dir.path().join("secrets"),
        &nats.url,
        "conversation_timeout_ms = 500\n",
    );
    let _worker = Worker::start(&dir.path().join("w"), &config).await;
    let code = "def execute_action(context):\n    return [get_conversation_metadata(context, 'plan'), context['conversation']['tags']]\n";
    let job = |tenant: &str, id: &str| json!({"id": format!("{tenant}-{id}"), "tenant": tenant, "conversation_id": id, "action": {"name": "plan", "type": "python", "python": {"code": code}}});

    // No engine, then one that does not answer: said at once, and after a bounded wait.
    let absent = common::nats::run_json(&client, &job("acme", "c-1")).await;
    assert_eq!(absent["status"], "rejected", "{absent}");
    assert!(
        absent["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no workflow engine answers on actions.conversations.get"),
        "{absent}"
    );
    let silent_engine = client.subscribe("actions.conversations.get").await.unwrap();
    client.flush().await.unwrap();
    let silent = common::nats::run_json(&client, &job("acme", "c-1")).await;
    assert!(
        silent["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not answer on actions.conversations.get within 500 ms"),
        "{silent}"
    );
    drop(silent_engine);

    engine(client.clone()).await;
    let known = common::nats::run_json(&client, &job("acme", "c-1")).await;
    assert_eq!(known["status"], "ok", "{known}");
    assert_eq!(known["output"], json!(["gold", ["vip"]]));
    // Scoped by tenant: another tenant's job does not get acme's conversation.
    let other = common::nats::run_json(&client, &job("globex", "c-1")).await;
    assert_eq!(other["status"], "rejected", "{other}");
    assert!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such conversation"),
        "{other}"
    );
    let both = json!({"id": "b", "conversation": {}, "conversation_id": "c-1", "action": {"name": "plan", "type": "python", "python": {"code": code}}});
    let both = common::nats::run_json(&client, &both).await;
    assert_eq!(both["status"], "rejected");

    // `run --conversation-id`: the local run asks the same engine.
    let script = dir.path().join("plan.py");
    std::fs::write(&script, code).unwrap();
    let config_file = dir.path().join("w/worker.toml");
    let (result, _) = common::run_script(
        &config_file,
        &script,
        &["--tenant", "acme", "--conversation-id", "c-1"],
        &[],
    )
    .await;
    assert_eq!(result["output"], json!(["gold", ["vip"]]), "{result}");
    // `submit --conversation-id`: the worker asks.
    let mut submit = std::process::Command::new(common::worker_binary());
    submit
        .arg("--config")
        .arg(&config_file)
        .arg("submit")
        .arg(&script);
    submit.args(["--tenant", "acme", "--conversation-id", "c-1"]);
    let out = tokio::task::spawn_blocking(move || submit.output().unwrap())
        .await
        .unwrap();
    let submitted: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(submitted["output"], json!(["gold", ["vip"]]), "{submitted}");
}

/// An upstream whose `/charge/<id>` answers at once and whose `/slow` after 400 ms, counting
/// each path's hits.
async fn charging_upstream() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .fallback(|State(seen): State<Seen>, uri: Uri| async move {
            let path = uri.path().to_string();
            seen.lock().unwrap().push((path.clone(), None));
            if path == "/slow" {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            axum::Json(json!({"ok": path}))
        })
        .with_state(seen.clone());
    (common::serve(app, "127.0.0.1:0").await, seen)
}

async fn stored_count(js: &jetstream::Context) -> u64 {
    let mut stream = js.get_stream("ACTIONS_RESULTS").await.unwrap();
    stream.info().await.map_or(0, |info| info.state.messages)
}

/// The fault drill of the issue: 120 durable jobs that each charge, then make a slower
/// call; their worker is killed with SIGKILL while it holds jobs between their two calls, a
/// second worker takes over, and the nats-server restarts. Every job has one result, and a
/// charge is made twice only where its first answer was never journaled (the worker died
/// with the call in flight): that job's trace says `re-sent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_drill_no_journaled_charge_is_made_twice() {
    let (addr, seen) = charging_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(&dir.path().join("nats")).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let js = jetstream::new(client);
    let config = config(&dir.path().join("secrets"), &nats.url, "");
    let doomed = Worker::start(&dir.path().join("a"), &config).await;
    let total = 120;
    let code = format!(
        "import requests\ndef execute_action(context):\n    charge = requests.post(\"http://{addr}/charge/\" + context[\"job\"][\"id\"]).json()\n    requests.get(\"http://{addr}/slow\")\n    return charge\n"
    );
    for n in 0..total {
        let job = json!({"id": format!("drill-{n}"), "tenant": "acme", "action": {"name": "pay", "type": "python", "python": {"code": code}}});
        submit_json(&js, "actions.jobs.acme", &job).await;
    }
    // Its jobs charge at once and then wait 400 ms: killed now, it holds them between calls.
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < 30 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.kill().await;
    let survivor = Worker::start(&dir.path().join("b"), &config).await;
    nats.restart(Duration::from_secs(1)).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    while stored_count(&js).await < total {
        assert!(Instant::now() < deadline, "not every job got a result");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (mut twice, mut replayed, mut redelivered) = (0, 0, 0);
    for n in 0..total {
        let id = format!("drill-{n}");
        let result = wait_stored(&js, &id).await;
        assert_eq!(result["status"], "ok", "{result}");
        let charges = count(&seen, &format!("/charge/{id}"));
        let note = result["trace"][0]["journal"].as_str().unwrap_or_default();
        replayed += usize::from(note == "replayed");
        redelivered += usize::from(result["attempt"].as_u64().unwrap() > 1);
        if charges > 1 {
            twice += 1;
            assert_eq!(note, "re-sent", "{id} charged {charges} times: {result}");
        }
        assert!((1..=2).contains(&charges), "{id} charged {charges} times");
    }
    assert_eq!(stored_count(&js).await, total, "one result per job");
    println!(
        "fault drill: {total} jobs, one result each; redelivered: {redelivered}; charges \
         answered from the journal on redelivery: {replayed}; charged twice (in flight at the \
         kill, re-sent with the same key): {twice}"
    );
    assert!(replayed > 0, "the kill caught no job between its two calls");
    drop(survivor);
}
