//! Runtime profiles (docs/actions.md, "Runtime profiles"): an action on the "contacts" profile
//! of worker.toml (phonenumbers, python-slugify; built by `make test` with
//! `action-worker runtime build`) imports its packages; a job on the default runtime cannot see
//! them; a profile's left-out module says why; an unknown profile is refused, naming the
//! known ones, by the worker, `check` and `actions put`; one worker serves both profiles.
// Tests fail by panicking: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use action_worker_tests as common;
use common::cli;
use common::nats::{Nats, Worker, run_json};

/// A job running `code` inline on `runtime` (None: no `python.runtime`).
fn job(id: &str, runtime: Option<&str>, code: &str, args: Value) -> Value {
    let mut python = json!({"code": code});
    if let Some(runtime) = runtime {
        python["runtime"] = json!(runtime);
    }
    json!({"id": id, "action": {"name": "t", "type": "python", "python": python}, "args": args})
}

const PHONE: &str = "import phonenumbers\nfrom slugify import slugify\n\ndef execute_action(context):\n    n = phonenumbers.parse(context['args']['phone'], 'GB')\n    return {'e164': phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164),\n            'valid': phonenumbers.is_valid_number(n), 'slug': slugify(context['args']['name'])}\n";

#[test]
fn the_example_actions_run_on_their_profile() {
    let out = common::worker(&[
        "run",
        "examples/actions/normalizePhone.toml",
        "--arg",
        "phone=+1 (650) 253-0000",
    ]);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["status"], "ok", "{result}");
    assert_eq!(result["output"]["e164"], "+16502530000", "{result}");
    assert_eq!(result["output"]["country"], "US", "{result}");
    assert_eq!(
        result["output"]["time_zones"],
        json!(["America/Los_Angeles"])
    );
    let out = common::worker(&[
        "run",
        "examples/actions/customerHandle.toml",
        "--arg",
        "name=Ærøskøbing Straße Ñandú",
    ]);
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["output"]["handle"], "aeroskobing-strasse-nandu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_serves_each_profile_and_keeps_them_apart() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let extra = format!(
        "[nats]\nurl = \"{}\"\n{}",
        nats.url,
        common::contacts_profile()
    );
    let _worker = Worker::start(&dir.path().join("w"), &extra).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    let args = json!({"phone": "020 7946 0958", "name": "Ça va, Zoë?"});
    // Alternating, so each profile's warm instances are taken and made again.
    for round in 0..3 {
        let on_profile = run_json(
            &client,
            &job(&format!("p{round}"), Some("contacts"), PHONE, args.clone()),
        )
        .await;
        assert_eq!(on_profile["status"], "ok", "{on_profile}");
        assert_eq!(
            on_profile["output"],
            json!({"e164": "+442079460958", "valid": true, "slug": "ca-va-zoe"})
        );
        // The same script on the default runtime: the profile's modules are not there.
        for runtime in [None, Some("default")] {
            let id = format!("d{round}{}", runtime.is_some());
            let on_default = run_json(&client, &job(&id, runtime, PHONE, args.clone())).await;
            assert_eq!(on_default["status"], "action_error", "{on_default}");
            let message = on_default["error"]["message"].as_str().unwrap();
            assert!(
                message.starts_with(
                    "ModuleNotFoundError: No module named 'phonenumbers': the action runtime (profile 'default') has Python's standard library and the packages requests, holidays"
                ),
                "{message}"
            );
            assert!(message.contains("\"Runtime profiles\""), "{message}");
        }
    }
    // A module the profile leaves out says so (and the worker keeps serving).
    let left_out = "def execute_action(context):\n    import phonenumbers.geocoder\n";
    let result = run_json(&client, &job("geo", Some("contacts"), left_out, json!({}))).await;
    let message = result["error"]["message"].as_str().unwrap();
    assert_eq!(
        message,
        "ModuleNotFoundError: No module named 'phonenumbers.geocoder': runtime profile 'contacts' has phonenumbers, but not this module: the profile leaves it out (runtime.profiles.contacts.exclude) (docs/actions.md, \"Runtime profiles\")"
    );
    // The profile is the default runtime plus its packages: the helpers and the bundled
    // packages are there too.
    let both = "import holidays, requests, phonenumbers\n\ndef execute_action(context):\n    return [is_holiday('GB', check_date='2026-12-25'), requests.__name__]\n";
    let result = run_json(&client, &job("both", Some("contacts"), both, json!({}))).await;
    assert_eq!(result["output"], json!([true, "requests"]), "{result}");

    // An unknown profile: rejected, naming the ones there are.
    let result = run_json(&client, &job("nope", Some("phones"), PHONE, args.clone())).await;
    assert_eq!(result["status"], "rejected", "{result}");
    assert_eq!(
        result["error"]["message"],
        "python.runtime: this worker has no runtime profile \"phones\"; its profiles: default, contacts"
    );
    // A name that cannot be a profile's is refused as a definition error.
    let result = run_json(&client, &job("bad", Some("Contacts"), PHONE, args.clone())).await;
    assert_eq!(result["status"], "rejected", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("python.runtime"), "{message}");
    let after = run_json(&client, &job("after", Some("contacts"), PHONE, args)).await;
    assert_eq!(after["status"], "ok", "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_and_actions_put_refuse_an_unknown_profile() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(&dir.path().join("nats")).await;
    let config = common::write_config(
        dir.path(),
        &format!(
            "[nats]\nurl = \"{}\"\n{}",
            nats.url,
            common::contacts_profile()
        ),
    );
    let definition = |runtime: &str| {
        format!(
            "name = \"phone\"\ntype = \"python\"\n[python]\nruntime = \"{runtime}\"\ncode = '''\n{PHONE}'''\n"
        )
    };
    let file = dir.path().join("phone.toml");
    let path = file.to_str().unwrap();

    std::fs::write(&file, definition("phones")).unwrap();
    let expected = format!(
        "{path}: error[runtime]: python.runtime: this worker has no runtime profile \"phones\"; its profiles: default, contacts\n"
    );
    let (code, out, _) = cli(&config, &["check", path]);
    assert_eq!((code, out.as_str()), (1, expected.as_str()));
    let (code, out, err) = cli(&config, &["actions", "put", path]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "nothing stored: {out}");
    assert!(err.contains(&expected), "{err}");
    assert!(
        err.contains("phone not stored: the checks found 1 error(s)"),
        "{err}"
    );

    // On its profile the script checks clean: the checker runs in the profile's runtime.
    std::fs::write(&file, definition("contacts")).unwrap();
    let (code, out, err) = cli(&config, &["check", path]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = cli(&config, &["actions", "put", path]);
    assert_eq!((code, out.trim()), (0, "phone: revision 1"), "{err}");
    // On the default runtime its imports cannot be satisfied.
    std::fs::write(&file, definition("default")).unwrap();
    let (code, out, _) = cli(&config, &["check", path]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with(&format!(
            "{path}:1:1: error[import]: No module named 'phonenumbers': the action runtime (profile 'default')"
        )),
        "{out}"
    );
}

#[test]
fn a_profile_without_its_component_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(
        dir.path(),
        "[runtime.profiles.ml]\nrequirements = \"ml.txt\"\ncomponent = \"/nonexistent/runtime-ml.wasm\"\n",
    );
    let (code, _, err) = cli(&config, &["precompile"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("/nonexistent/runtime-ml.wasm"), "{err}");
    for (toml, key) in [
        (
            "[runtime.profiles.default]\nrequirements = \"x.txt\"\n",
            "runtime.profiles.default",
        ),
        (
            "[runtime.profiles.ML]\nrequirements = \"x.txt\"\n",
            "runtime.profiles.ML",
        ),
        (
            "[runtime.profiles.ml]\nrequirements = \"x.txt\"\nexclude = [\"a..b\"]\n",
            "runtime.profiles.ml.exclude",
        ),
    ] {
        let config = common::write_config(dir.path(), toml);
        let (code, _, err) = cli(&config, &["check-config"]);
        assert_eq!(code, 2, "{toml}: {err}");
        assert!(err.contains(key), "{toml}: {err}");
    }
}

/// A wheel `NAME-1.0-TAG.whl` in `dir` holding `module.py`, made by the .venv's Python; its
/// requirements line (the file, pinned by its hash).
fn wheel(dir: &Path, name: &str, tag: &str, module: &str) -> String {
    let script = r#"
import base64, hashlib, sys, zipfile
dir, name, tag, module = sys.argv[1:]
path = f"{dir}/{name}-1.0-{tag}.whl"
info = f"{name}-1.0.dist-info"
files = {f"{module}.py": b"VALUE = 1\n",
         f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
         f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n".encode()}
record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}\n" for p, b in files.items())
files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
with zipfile.ZipFile(path, "w") as z:
    for p, b in files.items():
        z.writestr(p, b)
print(f"{path} --hash=sha256:{hashlib.sha256(open(path, 'rb').read()).hexdigest()}")
"#;
    let out = Command::new(common::repo_root().join(".venv/bin/python"))
        .args(["-c", script, dir.to_str().unwrap(), name, tag, module])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn runtime_build_refuses_what_a_profile_may_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pure = wheel(d, "tinyclock", "py3-none-any", "tinyclock");
    let native = wheel(d, "fastclock", "cp311-cp311-linux_x86_64", "fastclock");
    let clash = wheel(d, "notrequests", "py3-none-any", "requests");
    let cases = [
        // Not pinned by a hash: pip refuses in --require-hashes mode.
        (
            pure.split(" --hash").next().unwrap().to_string(),
            "pip could not install",
        ),
        (
            native,
            "is not a pure-Python wheel (tag cp311-cp311-linux_x86_64)",
        ),
        (
            clash,
            "a package provides module 'requests', which the runtime already has",
        ),
    ];
    for (i, (line, expected)) in cases.iter().enumerate() {
        let requirements = d.join(format!("r{i}.txt"));
        std::fs::write(&requirements, format!("{line}\n")).unwrap();
        std::fs::create_dir_all(d.join(format!("c{i}"))).unwrap();
        let config = common::write_config(
            &d.join(format!("c{i}")),
            &format!(
                "[runtime.profiles.test-refused-{i}]\nrequirements = \"{}\"\ncomponent = \"{}\"\n",
                requirements.display(),
                d.join(format!("runtime-{i}.wasm")).display()
            ),
        );
        let source = common::repo_root();
        let (code, _, err) = cli(
            &config,
            &["runtime", "build", "--source", source.to_str().unwrap()],
        );
        assert_eq!(code, 2, "{line}: {err}");
        assert!(err.contains(expected), "{line}: {err}");
        assert!(
            err.contains(&format!(
                "runtime profile test-refused-{i}: the build failed"
            )),
            "{err}"
        );
        assert!(!d.join(format!("runtime-{i}.wasm")).exists());
    }
    // Naming a profile the configuration does not have.
    std::fs::create_dir_all(d.join("c9")).unwrap();
    let config = common::write_config(&d.join("c9"), &common::contacts_profile());
    let (code, _, err) = cli(&config, &["runtime", "build", "phones"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no profile \"phones\" in [runtime.profiles] (it has: contacts)"),
        "{err}"
    );
    let (code, out, _) = cli(&config, &["runtime", "list"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("contacts\t") && l.ends_with("\tbuilt")),
        "{out}"
    );
}
