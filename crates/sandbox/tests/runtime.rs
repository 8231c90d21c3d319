//! The Python runtime's contract (SPEC §3): context, output, errors, imports, isolation.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use action_protocol::{ErrorKind, Status};
use action_sandbox::{JobLimits, NoNetwork};
use common::{EchoHost, run, run_with};
use serde_json::json;

#[tokio::test]
async fn execute_action_gets_its_context_and_returns_json() {
    let source = "def execute_action(context):\n    return {'echo': context['args'], 'job': context['job']['id'], 'n': 1.5, 'ok': True, 'none': None}\n";
    let out = run_with(
        source,
        json!({"orderId": "A1", "qty": 3}),
        JobLimits::default(),
        Box::new(NoNetwork),
    )
    .await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    assert_eq!(
        out.output,
        json!({"echo": {"orderId": "A1", "qty": 3}, "job": "j1", "n": 1.5, "ok": true, "none": null})
    );
    assert!(out.stats.fuel_used > 0);
    assert!(out.stats.memory_peak_bytes > 0);
}

#[tokio::test]
async fn an_error_dict_is_an_ordinary_successful_run() {
    let out = run("def execute_action(c):\n    return {'error': 'Order not found'}\n").await;
    assert_eq!(out.status, Status::Ok);
    assert_eq!(out.output, json!({"error": "Order not found"}));
}

#[tokio::test]
async fn an_exception_gives_the_message_and_the_scripts_own_lines() {
    let source = "import json\n\ndef lookup(args):\n    return args['orderId']\n\ndef execute_action(context):\n    return lookup(context['args'])\n";
    let out = run(source).await;
    assert_eq!(out.status, Status::ActionError, "{out:?}");
    let error = out.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Exception);
    assert_eq!(error.message, "KeyError: 'orderId'");
    let tb = error.traceback.unwrap();
    assert!(
        tb.contains("File \"testAction.py\", line 7, in execute_action"),
        "{tb}"
    );
    assert!(
        tb.contains("File \"testAction.py\", line 4, in lookup"),
        "{tb}"
    );
    assert!(tb.contains("return args['orderId']"), "{tb}");
    assert!(!tb.contains("app.py"), "runtime frames leak: {tb}");
}

#[tokio::test]
async fn a_syntax_error_names_its_line() {
    let out = run("def execute_action(c):\n    return (1 +\n\nx = 2\n").await;
    assert_eq!(out.status, Status::ActionError, "{out:?}");
    let error = out.error.unwrap();
    assert_eq!(error.kind, ErrorKind::Syntax);
    assert!(error.message.contains("SyntaxError"), "{}", error.message);
    assert!(error.traceback.unwrap_or_default().contains("line 2"));
}

#[tokio::test]
async fn a_script_without_execute_action_says_so() {
    let out = run("def run(c):\n    return 1\n").await;
    let error = out.error.unwrap();
    assert_eq!(error.kind, ErrorKind::MissingEntrypoint);
    assert!(error.message.contains("execute_action"));
}

#[tokio::test]
async fn a_non_json_return_value_says_so() {
    for (source, needle) in [
        (
            "def execute_action(c):\n    return {1, 2}\n",
            "not JSON serializable",
        ),
        (
            "def execute_action(c):\n    return float('nan')\n",
            "Out of range float",
        ),
        ("def execute_action(c):\n    return object()\n", "object"),
    ] {
        let out = run(source).await;
        assert_eq!(out.status, Status::ActionError, "{source}");
        let error = out.error.unwrap();
        assert_eq!(error.kind, ErrorKind::InvalidOutput);
        assert!(
            error.message.contains("not JSON") && error.message.contains(needle),
            "{}",
            error.message
        );
    }
}

#[tokio::test]
async fn a_global_set_by_one_job_is_absent_in_the_next() {
    let first = "import builtins, json, sys\nSTATE = []\ndef execute_action(c):\n    builtins.leaked = 1\n    json.leaked = 1\n    sys.modules['leaky'] = json\n    STATE.append(1)\n    return len(STATE)\n";
    let second = "import builtins, json, sys\ndef execute_action(c):\n    return [hasattr(builtins, 'leaked'), hasattr(json, 'leaked'), 'leaky' in sys.modules]\n";
    assert_eq!(run(first).await.output, json!(1));
    assert_eq!(run(first).await.output, json!(1));
    assert_eq!(run(second).await.output, json!([false, false, false]));
}

#[tokio::test]
async fn the_spec_modules_import() {
    let source = "def execute_action(c):\n    import json, re, datetime, time, math, decimal, hashlib, hmac, base64, urllib.parse, uuid, random, string, collections, itertools, functools, dataclasses, enum, typing, statistics, zoneinfo, requests\n    import csv, textwrap, html, difflib, fractions, copy, operator, heapq, bisect, pprint, calendar, email.utils, xml.etree.ElementTree, unicodedata, zlib, struct, secrets, io, abc, contextlib, ipaddress, shlex, locale, gzip\n    tz = zoneinfo.ZoneInfo('Europe/Athens')\n    when = datetime.datetime(2026, 7, 1, 12, 0, tzinfo=tz)\n    return {\n        'sha': hashlib.sha256(b'x').hexdigest()[:8],\n        'hmac': hmac.new(b'k', b'm', 'sha256').hexdigest()[:8],\n        'b64': base64.b64encode(b'hi').decode(),\n        'q': urllib.parse.urlencode({'a': 'b c'}),\n        'dec': str(decimal.Decimal('1.10') + decimal.Decimal('2.20')),\n        'offset': when.utcoffset().total_seconds(),\n        'mean': statistics.mean([1, 2, 3]),\n        'uuid': len(str(uuid.uuid4())),\n        'utc_now': datetime.datetime.now(datetime.timezone.utc).year >= 2026,\n    }\n";
    let out = run(source).await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    assert_eq!(
        out.output,
        json!({"sha": "2d711642", "hmac": "b60090e3", "b64": "aGk=", "q": "a=b+c", "dec": "3.30",
               "offset": 10800.0, "mean": 2, "uuid": 36, "utc_now": true})
    );
}

#[tokio::test]
async fn each_job_draws_its_own_random_numbers() {
    let source = "import random, uuid\ndef execute_action(c):\n    return [random.random(), str(uuid.uuid4())]\n";
    let a = run(source).await.output;
    let b = run(source).await.output;
    assert_ne!(a, b);
}

/// `random` seeds itself on a job's first draw (python-runtime/lazy_random.py), so every way
/// in must seed: each draw below is the first use of the generator in its job. (Ranges stay
/// under 2**31: `len()` of a range is a C ssize_t, 32 bits in WebAssembly.)
#[tokio::test]
async fn every_way_into_random_draws_anew_in_each_job() {
    let draws = [
        "random.random()",
        "early()",
        "random.getrandbits(62)",
        "random.randint(0, 2**62)",
        "random.randrange(2**62)",
        "random.choice(range(2**30))",
        "random.sample(range(2**30), 2)",
        "random.randbytes(8).hex()",
        "random.uniform(0, 1)",
        "random.gauss(0, 1)",
        "random.getstate()[1][:4]",
        "shuffled()",
    ];
    for draw in draws {
        let source = format!(
            "import random\nfrom random import random as early\n\
             def shuffled():\n    xs = list(range(50))\n    random.shuffle(xs)\n    return xs\n\
             def execute_action(c):\n    return repr({draw})\n"
        );
        let a = run(&source).await;
        let b = run(&source).await;
        assert_eq!(a.status, Status::Ok, "{draw}: {a:?}");
        assert_ne!(a.output, b.output, "{draw} drew the same in two jobs");
    }
}

#[tokio::test]
async fn a_job_that_seeds_random_gets_the_seeded_sequence() {
    let source = "import random\ndef execute_action(c):\n    random.seed(42)\n    first = random.random()\n    state = random.getstate()\n    a = random.random()\n    random.setstate(state)\n    return [first, a == random.random(), random.Random(42).random()]\n";
    let a = run(source).await.output;
    assert_eq!(a, json!([0.6394267984578837, true, 0.6394267984578837]));
    assert_eq!(run(source).await.output, a);
}

#[tokio::test]
async fn a_seed_or_state_that_fails_leaves_random_to_seed_itself() {
    let source = "import random\ndef execute_action(c):\n    for bad in (lambda: random.setstate(None), lambda: random.seed([1, 2])):\n        try:\n            bad()\n        except (TypeError, ValueError):\n            pass\n    return random.random()\n";
    let a = run(source).await;
    assert_eq!(a.status, Status::Ok, "{a:?}");
    assert_ne!(a.output, run(source).await.output);
}

#[tokio::test]
async fn no_filesystem_sockets_subprocesses_threads_or_environment() {
    let source = r#"
import os
def attempt(fn):
    try:
        fn()
    except BaseException as exc:
        return type(exc).__name__
    return "allowed"

def execute_action(context):
    import socket, subprocess, threading
    return {
        "read": attempt(lambda: open("/etc/passwd").read()),
        "write": attempt(lambda: open("/tmp/x", "w").write("x")),
        "listdir": attempt(lambda: os.listdir("/")),
        "socket": attempt(lambda: socket.create_connection(("127.0.0.1", 80), timeout=1)),
        "subprocess": attempt(lambda: subprocess.run(["ls"])),
        "system": attempt(lambda: os.system("ls")),
        "thread": attempt(lambda: threading.Thread(target=print).start()),
        "env": dict(os.environ),
    }
"#;
    let out = run(source).await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    let o = &out.output;
    for key in [
        "read",
        "write",
        "listdir",
        "socket",
        "subprocess",
        "system",
        "thread",
    ] {
        assert_ne!(o[key], json!("allowed"), "{key} was allowed: {o}");
    }
    assert_eq!(o["env"], json!({}));
}

#[tokio::test]
async fn requests_reaches_the_host_and_raises_its_errors() {
    let source = r#"
import requests
def execute_action(context):
    r = requests.post("https://api.example.com/orders", params={"id": "A 1", "tags": ["x", "y"]},
                      json={"qty": 3}, headers={"X-Key": "k"}, timeout=(3, 10))
    r.raise_for_status()
    denied = None
    try:
        requests.get("https://blocked.example.com/")
    except requests.exceptions.ConnectionError as exc:
        denied = str(exc)
    return {"echo": r.json(), "ok": r.ok, "ctype": r.headers["content-type"], "denied": denied}
"#;
    let out = run_with(source, json!({}), JobLimits::default(), Box::new(EchoHost)).await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    let echo = &out.output["echo"];
    assert_eq!(echo["method"], "POST");
    assert_eq!(
        echo["url"],
        "https://api.example.com/orders?id=A+1&tags=x&tags=y"
    );
    assert_eq!(echo["body"], "{\"qty\": 3}");
    assert!(
        echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h == &json!(["X-Key", "k"]))
    );
    assert_eq!(out.output["ctype"], "application/json");
    assert_eq!(out.stats.http_calls, 2);

    let out =
        run("import requests\ndef execute_action(c):\n    requests.get('https://x.example.com')\n")
            .await;
    let error = out.error.unwrap();
    assert!(
        error
            .message
            .starts_with("requests.exceptions.ConnectionError")
            || error.message.starts_with("ConnectionError"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("no network access"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_hostile_exception_does_not_escape() {
    let source = "class Bad(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n\ndef execute_action(c):\n    raise Bad()\n";
    let out = run(source).await;
    assert_eq!(out.status, Status::ActionError, "{out:?}");
    assert!(out.error.unwrap().message.contains("Bad"));
    let out = run("import sys\ndef execute_action(c):\n    sys.exit(3)\n").await;
    assert_eq!(out.error.unwrap().message, "SystemExit: 3");
}

#[tokio::test]
async fn the_conversation_helpers_are_globals_and_check_types() {
    let source = r#"
def execute_action(context):
    out = {
        "get": get_conversation_metadata(context, "plan"),
        "set": set_conversation_metadata(context, "n", 3),
        "tag": add_conversation_tag(context, "vip"),
        "hand_off": hand_off_conversation(context),
    }
    try:
        set_conversation_metadata(context, "k", ["not", "a", "str"])
    except TypeError as exc:
        out["type_error"] = str(exc)
    return out
"#;
    let out = run(source).await;
    assert_eq!(out.status, Status::Ok, "{out:?}");
    assert_eq!(
        out.output,
        json!({
            "get": null,
            "set": {"success": false, "message": "no conversation", "key": "n", "value": "3"},
            "tag": {"success": false, "message": "no conversation", "tagId": null},
            "hand_off": {"success": false, "message": "no conversation"},
            "type_error": "value must be a str, int, float or bool, not list",
        })
    );
}

/// More jobs at once than instance slots: the extra ones wait for a slot (given back after
/// each job) instead of failing with the pooling allocator's "limit reached".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_beyond_the_instance_slots_wait_for_one() {
    let root = common::repo_root();
    let mut config = action_sandbox::SandboxConfig::new(root.join("build/action-runtime.wasm"));
    config.cache_dir = Some(root.join("build/cache"));
    config.max_instances = 2;
    let sandbox = action_sandbox::Sandbox::new(config).unwrap();
    let ctx = common::context(json!({}));
    let mut tasks = vec![];
    for i in 0..12 {
        let sandbox = sandbox.clone();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let source = format!("def execute_action(c):\n    return {i}\n");
            let job = action_sandbox::PythonJob {
                action: "slots",
                source: &source,
                context: &ctx,
                limits: JobLimits::default(),
                runtime: "default",
            };
            sandbox.run(job, Box::new(NoNetwork)).await.0
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap();
        assert_eq!(out.status, Status::Ok, "{out:?}");
        assert_eq!(out.output, json!(i));
    }
}
