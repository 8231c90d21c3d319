//! What action authors meet before and while a script runs: errors that teach (a module the
//! runtime lacks, files, sockets, threads, subprocesses, the environment), `action-worker
//! check` (every check, its format and exit codes), `actions put` refusing errors, and the
//! editor stubs type-checked with pyright against the examples.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use action_worker_tests as common;
use common::cli;
use common::nats::Nats;

async fn run(source: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "");
    let script = dir.path().join("script.py");
    std::fs::write(&script, source).unwrap();
    common::run_script(&config, &script, &[], &[]).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_module_says_what_the_runtime_has() {
    let result = run("import pandas\n\ndef execute_action(context):\n    return 1\n").await;
    assert_eq!(result["status"], "action_error", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("ModuleNotFoundError: No module named 'pandas': the action runtime (profile 'default') has Python's standard library and the packages requests, holidays, dateutil"),
        "{message}"
    );
    assert!(message.contains("docs/actions.md"), "{message}");
    // The traceback is the script's, not the runtime's import machinery.
    let traceback = result["error"]["traceback"].as_str().unwrap();
    assert!(traceback.contains("line 1, in <module>"), "{traceback}");
    assert!(!traceback.contains("teach.py"), "{traceback}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_names_the_capability_and_the_way_here() {
    let source = r#"
import os, socket, subprocess, threading

def attempt(fn):
    try:
        fn()
    except BaseException as e:
        return [type(e).__name__, isinstance(e, OSError), str(e)]
    return "no error"

def execute_action(context):
    import urllib.request
    return {
        "import_ssl": attempt(lambda: __import__("ssl")),
        "pool": attempt(lambda: __import__("concurrent.futures").futures.ThreadPoolExecutor(2).submit(print, 1)),
        "guarded_import": attempt(lambda: exec("try:\n    import numpy\nexcept ImportError:\n    pass")),
        "open": attempt(lambda: open("orders.csv")),
        "socket": attempt(lambda: socket.socket()),
        "connect": attempt(lambda: socket.create_connection(("example.com", 80))),
        "urlopen": attempt(lambda: urllib.request.urlopen("http://example.com")),
        "thread": attempt(lambda: threading.Thread(target=print).start()),
        "subprocess": attempt(lambda: subprocess.run(["ls"])),
        "system": attempt(lambda: os.system("ls")),
        "environ": attempt(lambda: os.environ["API_KEY"]),
        "getenv": os.getenv("API_KEY"),
    }
"#;
    let result = run(source).await;
    assert_eq!(result["status"], "ok", "{result}");
    let o = &result["output"];
    let says = |key: &str, class: &str, words: &[&str]| {
        let seen = &o[key];
        assert_eq!(seen[0], class, "{key}: {seen}");
        let text = seen[2].as_str().unwrap();
        for word in words {
            assert!(text.contains(word), "{key}: {text:?} lacks {word:?}");
        }
    };
    says(
        "import_ssl",
        "ModuleNotFoundError",
        &["'ssl'", "TLS is the worker's", "requests"],
    );
    says(
        "pool",
        "RuntimeError",
        &["threads are not available", "one thread"],
    );
    assert_eq!(
        o["guarded_import"], "no error",
        "a guarded import is still an ImportError"
    );
    says(
        "open",
        "FileNotFoundError",
        &[
            "files are not available in actions",
            "orders.csv",
            "requests",
        ],
    );
    assert_eq!(o["open"][1], true, "still an OSError");
    says(
        "socket",
        "PermissionError",
        &["sockets are not available", "use requests"],
    );
    says("connect", "PermissionError", &["sockets are not available"]);
    says(
        "urlopen",
        "PermissionError",
        &["urllib.request.urlopen is not available", "requests"],
    );
    says(
        "thread",
        "RuntimeError",
        &["threads are not available", "one after another"],
    );
    says(
        "subprocess",
        "PermissionError",
        &["subprocesses are not available"],
    );
    says(
        "system",
        "PermissionError",
        &["subprocesses are not available"],
    );
    says(
        "environ",
        "KeyError",
        &[
            "API_KEY",
            "environment variables are not available",
            "{{secrets.NAME}}",
        ],
    );
    assert_eq!(o["getenv"], Value::Null);
}

/// `check` on `source` saved as `name`: (exit code, stdout lines).
fn check(dir: &Path, name: &str, source: &str) -> (i32, Vec<String>) {
    let config = common::write_config(dir, "");
    let path = dir.join(name);
    std::fs::write(&path, source).unwrap();
    let (code, out, err) = cli(&config, &["check", path.to_str().unwrap()]);
    assert!(err.contains("errors,"), "the summary on stderr: {err}");
    let prefix = format!("{}", path.display());
    let lines = out
        .lines()
        .map(|l| {
            l.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{l:?} does not start with the path"))
                .to_string()
        })
        .collect();
    (code, lines)
}

#[test]
fn check_reports_each_problem_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let clean = "import requests, json\n\ndef execute_action(context):\n    add_conversation_tag(context, 'x')\n    return json.dumps(requests.codes.ok)\n";
    assert_eq!(check(d, "clean.py", clean), (0, vec![]));

    let (code, lines) = check(
        d,
        "syntax.py",
        "def execute_action(context):\n    return {'a': 1\n",
    );
    assert_eq!(code, 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(":2:12: error[syntax]: "), "{lines:?}");

    let (code, lines) = check(d, "none.py", "def main(context):\n    return 1\n");
    assert_eq!(
        (code, lines),
        (
            1,
            vec![
                ": error[entry-point]: the script defines no function execute_action(context)"
                    .to_string()
            ]
        )
    );

    let (_, lines) = check(
        d,
        "arity.py",
        "def execute_action(context, extra):\n    return 1\n",
    );
    assert_eq!(
        lines,
        vec![
            ":1:1: error[entry-point]: execute_action takes (context, extra); the runtime calls it with one argument: execute_action(context)"
        ]
    );
    let (_, lines) = check(
        d,
        "async.py",
        "async def execute_action(context):\n    return 1\n",
    );
    assert!(
        lines[0].starts_with(":1:1: error[entry-point]: execute_action is async"),
        "{lines:?}"
    );
    // A default, *args or a single parameter are all callable with one argument.
    assert_eq!(
        check(
            d,
            "okArity.py",
            "def execute_action(context, retries=3):\n    return 1\n"
        )
        .1,
        Vec::<String>::new()
    );

    let imports = "import pandas\nimport os.nothing\ntry:\n    import numpy\nexcept ImportError:\n    numpy = None\nimport socket\nfrom dateutil import parser\n\ndef execute_action(context):\n    return 1\n";
    let (code, lines) = check(d, "imports.py", imports);
    assert_eq!(code, 1);
    assert!(
        lines[0]
            .starts_with(":1:1: error[import]: No module named 'pandas': the action runtime (profile 'default') has"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(":2:1: error[import]: No module named 'os.nothing'"),
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with(":4:5: warning[import]: No module named 'numpy'"),
        "{lines:?}"
    );
    assert!(
        lines[3].starts_with(
            ":7:1: warning[capability]: socket imports, but sockets are not available"
        ),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "dateutil is bundled: {lines:?}");

    let helpers = "def execute_action(context):\n    add_conversation_tag(context)\n    hand_off_conversation(context, reasn='x')\n    llm_classify_category('p', 'i', ['a', 'b'], fallback='a')\n    is_holiday(*['US'])\n    return get_conversation_metadata(context, 'k', 'extra')\n";
    let (code, lines) = check(d, "helpers.py", helpers);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        vec![
            ":2:5: error[helper-arguments]: add_conversation_tag(context, tag): missing a required argument: 'tag'",
            ":3:5: error[helper-arguments]: hand_off_conversation(context, reason=None, phone_destination=None): got an unexpected keyword argument 'reasn'",
            ":6:12: error[helper-arguments]: get_conversation_metadata(context, key): too many positional arguments",
        ]
    );
    // A script that defines its own function of a helper's name is not second-guessed.
    let own = "def add_conversation_tag(tag):\n    return tag\n\ndef execute_action(context):\n    return add_conversation_tag('x')\n";
    assert_eq!(check(d, "own.py", own), (0, vec![]));
    let local = "def execute_action(context):\n    def add_conversation_tag(x):\n        return x\n    return add_conversation_tag(1)\n";
    assert_eq!(check(d, "local.py", local), (0, vec![]));
    // An entry point defined under a module-level if or try is found.
    let nested = "try:\n    import json\nexcept ImportError:\n    json = None\nif True:\n    def execute_action(context):\n        return 1\n";
    assert_eq!(check(d, "nested.py", nested), (0, vec![]));
}

#[test]
fn check_compares_an_api_actions_variables_with_its_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let toml = r#"name = "lookup"
type = "api"
description = "Looks up an order"
[api]
base_url = "https://erp.example.com"
path = "/orders/$orderId"
method = "GET"
query = { email = "$email" }
[parameters.orderId]
type = "string"
required = false
[parameters.region]
type = "string"
"#;
    let (code, lines) = check(d, "lookup.toml", toml);
    assert_eq!(code, 1);
    assert_eq!(
        lines,
        vec![
            ": error[optional-variable]: parameters.orderId says required: false, but $orderId is in the request, so every job must give it",
            ": warning[undeclared-variable]: $email is not in parameters: the AI is told only its name (give it a type and a description)",
            ": warning[unused-parameter]: parameters.region is declared, but no $region uses it: its value is never sent",
        ]
    );
    let (code, lines) = check(d, "bad.toml", "name = \"Bad\"\ntype = \"api\"\n");
    assert_eq!(code, 1);
    assert!(lines[0].starts_with(": error[definition]: "), "{lines:?}");
    assert!(lines[0].contains("name"), "{lines:?}");
    // The shipped examples are clean (two of them on the "contacts" profile).
    let config = common::write_config(d, &common::contacts_profile());
    let examples = common::repo_root().join("examples/actions");
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, out, err) = cli(&config, &["check", path.to_str().unwrap()]);
            assert_eq!(code, 0, "{}: {out}{err}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_put_refuses_errors_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let config = common::write_config(dir.path(), &format!("[nats]\nurl = \"{}\"\n", nats.url));
    let script = dir.path().join("broken.py");
    std::fs::write(
        &script,
        "import pandas\n\ndef execute_action(context):\n    return 1\n",
    )
    .unwrap();
    let path = script.to_str().unwrap();
    let (code, out, err) = cli(&config, &["actions", "put", path]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "nothing stored: {out}");
    assert!(
        err.contains(":1:1: error[import]: No module named 'pandas'"),
        "{err}"
    );
    assert!(
        err.contains("broken not stored: the checks found 1 error(s) (--force stores it anyway)"),
        "{err}"
    );
    let (code, out, _) = cli(&config, &["actions", "list"]);
    assert_eq!((code, out.as_str()), (0, ""), "the registry holds nothing");

    let (code, out, err) = cli(&config, &["actions", "put", "--force", path]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "broken: revision 1");
    // A clean action is stored without a word on stderr.
    std::fs::write(&script, "def execute_action(context):\n    return 1\n").unwrap();
    let (code, out, err) = cli(&config, &["actions", "put", path]);
    assert_eq!(
        (code, out.trim(), err.as_str()),
        (0, "broken: revision 2", "")
    );
}

/// The names a stub file defines at its top level (classes and functions).
fn stub_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("class ").or_else(|| l.strip_prefix("def ")))
        .map(|rest| rest.split(['(', ':']).next().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stubs_describe_the_runtime_and_type_check_the_examples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = common::repo_root();
    let config = common::write_config(d, "");
    let project = d.join("project");
    let (code, out, err) = cli(&config, &["stubs", project.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let (_, printed, _) = cli(&config, &["stubs"]);
    let stub = std::fs::read_to_string(project.join("action_runtime.pyi")).unwrap();
    assert_eq!(printed, stub);

    // What the stubs name is what the runtime offers.
    let result = run("import action_runtime\n\ndef execute_action(context: Context):\n    return [action_runtime.__all__, [k for k in action_runtime.__all__ if eval(k) is getattr(action_runtime, k)]]\n").await;
    assert_eq!(result["status"], "ok", "{result}");
    let names = stub_names(&stub);
    assert_eq!(result["output"][0], serde_json::json!(names));
    assert_eq!(
        result["output"][1],
        serde_json::json!(names),
        "every name is there in a script, without an import"
    );

    // The examples, annotated as an editor would have them, type-check; a script with mistakes
    // does not, and pyright names each.
    for entry in std::fs::read_dir(root.join("examples/actions")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "py") {
            std::fs::copy(&path, project.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        project.join("pyrightconfig.json"),
        format!(
            "{{\"pythonVersion\": \"3.14\", \"extraPaths\": [\"{}\", \"{}\", \"{}\"]}}",
            root.join("python-runtime").display(),
            root.join("build/pydeps").display(),
            // The "contacts" profile's packages, for the examples that run on it.
            root.join("build/profiles/contacts/pydeps").display()
        ),
    )
    .unwrap();
    let pyright_in = |dir: &Path, args: &[&str]| {
        let out = Command::new(root.join(".venv/bin/pyright"))
            .current_dir(dir)
            .env("PYRIGHT_PYTHON_IGNORE_WARNINGS", "1")
            .args(args)
            .output()
            .expect("pyright in .venv (make venv)");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = pyright_in(&project, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("0 errors"), "{out}");
    assert!(!out.contains("0 files"), "{out}");

    // Mistakes, in a project of their own beside it.
    let wrong = d.join("wrong");
    let (code, _, err) = cli(&config, &["stubs", wrong.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(
        wrong.join("mistakes.py"),
        "def execute_action(context: Context):\n    add_conversation_tag(context)\n    who = context['argz']\n    return is_holiday(3)\n",
    )
    .unwrap();
    let (code, out) = pyright_in(&wrong, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Argument missing for parameter \"tag\""),
        "{out}"
    );
    assert!(
        out.contains("\"argz\" is not a defined key in \"Context\""),
        "{out}"
    );
    assert!(
        out.contains("\"Literal[3]\" is not assignable to \"str\""),
        "{out}"
    );
}

/// Habit 14: every surface that reads untrusted text, fed generated text in one job — the
/// Set-Cookie and Link parsers (an upstream's headers), URL building (a script's input), and
/// the checker (an author's source). Nothing may raise but the errors each documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_text_never_escapes_the_parsers() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let strategy = proptest::collection::vec(
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9=;,<> \"'./:@%#?\\[\\]()\\-\\n\\t]{0,80}",
            "(def |import |class |async |\\(|\\)|:|\\n    |execute_action|return |from \\. |\\x00){0,30}",
        ],
        400,
    );
    let texts = strategy.new_tree(&mut runner).unwrap().current();
    let source = r#"
import requests
from requests import _wire, cookies, models
import action_check

def execute_action(context):
    escaped = []
    for text in context["args"]["texts"]:
        try:
            cookies._parse_set_cookie(text, "example.com", "/a")
            jar = cookies.RequestsCookieJar()
            jar.extract([text], "https://example.com/a/b")
            jar.header_for("https://example.com/a/b/c")
            models.parse_header_links(text)
            try:
                _wire._build_url(text, {"q": text})
            except (requests.RequestException, ValueError):
                pass
            findings = action_check.check("x.py", text)
            assert isinstance(findings, list) and all(f["severity"] in ("error", "warning") for f in findings)
        except Exception as e:
            escaped.append([text, repr(e)])
    return escaped
"#;
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), "");
    let script = dir.path().join("fuzz.py");
    std::fs::write(&script, source).unwrap();
    let args = serde_json::json!({ "texts": texts }).to_string();
    let (result, _) = common::run_script(&config, &script, &["--args-json", &args], &[]).await;
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(
        result["output"],
        serde_json::json!([]),
        "escaped: {}",
        result["output"]
    );
}
