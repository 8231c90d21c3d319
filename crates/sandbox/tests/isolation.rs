//! One job's writes never reach the next job in the same instance slot, however many pages
//! they touch. The slot reset keeps dirty pages resident and copies them back from the memory
//! image (vendor/PATCHES.md): this is the test of that copy.
//!
//! Its own test binary, so jobs run one after another in one process: the pooling allocator
//! gives a module's next instance the slot its last one used.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use action_protocol::Status;
use common::run;
use serde_json::Value;

/// Writes into every loaded module's namespace and `builtins`, allocates a spread of buffers,
/// and reports how many pages, and separate runs of pages, the module dictionaries it wrote
/// occupy (object ids are linear-memory addresses).
const DIRTY: &str = r#"
import sys, builtins
def execute_action(c):
    pages = set()
    for name, module in list(sys.modules.items()):
        try:
            module.__dict__['_leaked_by_job'] = name
            pages.add(id(module.__dict__) >> 12)
        except Exception:
            pass
    builtins.leaked = True
    for size in range(1, 4000, 7):
        builtins.__dict__.setdefault('_keep', []).append(bytearray(size))
    runs = 0
    last = None
    for page in sorted(pages):
        if last is None or page != last + 1:
            runs += 1
        last = page
    return {'pages': len(pages), 'page_runs': runs}
"#;

/// What a fresh instance looks like: no marker anywhere, and the same number of live objects
/// every time.
const CHECK: &str = r#"
import sys, builtins, gc
def execute_action(c):
    marked = sorted(name for name, module in list(sys.modules.items())
                    if '_leaked_by_job' in getattr(module, '__dict__', {}))
    return {
        'marked': marked,
        'builtins': [hasattr(builtins, 'leaked'), hasattr(builtins, '_keep')],
        'objects': len(gc.get_objects()),
        'modules': len(sys.modules),
    }
"#;

#[tokio::test]
async fn scattered_writes_do_not_reach_the_next_job() {
    let baseline = run(CHECK).await;
    assert_eq!(baseline.status, Status::Ok, "{baseline:?}");
    let baseline = baseline.output;
    assert_eq!(baseline["marked"], Value::Array(vec![]));

    for round in 0..5 {
        let dirty = run(DIRTY).await;
        assert_eq!(dirty.status, Status::Ok, "{dirty:?}");
        // Far more separate dirty regions than upstream wasmtime's reset kept (32).
        let runs = dirty.output["page_runs"].as_u64().unwrap();
        assert!(
            runs > 64,
            "round {round}: only {runs} runs of pages dirtied"
        );

        let after = run(CHECK).await;
        assert_eq!(after.status, Status::Ok, "{after:?}");
        assert_eq!(
            after.output, baseline,
            "round {round}: a job saw the last one's writes"
        );
    }
}
