//! alternatives-bench: the worker against a process-per-job runner and an unisolated
//! in-process runner, all behind the same NATS request-reply protocol. See README.md.
//!
//!     CARGO_TARGET_DIR=$HOME/.cache/action-worker/alt-target cargo run --release
//!
//! `alternatives-bench front MODE URL SUBJECT PYTHON SCRIPT_DIR MAX_IN_FLIGHT` is the NATS
//! front of runners B (MODE = process) and C (MODE = inprocess); the bench starts it itself.

mod bench;
mod front;
mod mem;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("front") {
        let [_, _, mode, url, subject, python, script_dir, max] = &args[..] else {
            eprintln!(
                "usage: alternatives-bench front MODE URL SUBJECT PYTHON SCRIPT_DIR MAX_IN_FLIGHT"
            );
            std::process::exit(2);
        };
        let front_args = front::FrontArgs {
            mode: mode.clone(),
            url: url.clone(),
            subject: subject.clone(),
            python: python.into(),
            script_dir: script_dir.into(),
            max_in_flight: max.parse().unwrap_or(64),
        };
        if let Err(e) = front::serve(front_args).await {
            eprintln!("alt-runner: {e}");
            std::process::exit(1);
        }
        return;
    }
    bench::run().await;
}
