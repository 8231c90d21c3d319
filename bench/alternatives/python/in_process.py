"""Runner C: one long-lived python3 process, no sandbox. Reads `ID<TAB>JOB-JSON` lines on
stdin, runs each job on a thread of a pool (a fresh globals dict per job, so in-flight HTTP
waits overlap; CPU-bound jobs share one core through the GIL) and writes `ID<TAB>RESULT-JSON`
lines on stdout, in completion order."""

import json
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from jobrun import run_job

out = sys.__stdout__.buffer
lock = threading.Lock()


def one(line):
    tag, _, raw = line.partition(b"\t")
    try:
        result = json.dumps(run_job(raw)).encode()
    except BaseException as e:  # never leave the front waiting
        result = json.dumps({"job_id": "", "status": "failed", "output": None,
                             "error": {"kind": "runner", "message": repr(e)}}).encode()
    with lock:
        out.write(tag + b"\t" + result + b"\n")
        out.flush()


pool = ThreadPoolExecutor(max_workers=int(os.environ.get("MAX_IN_FLIGHT", "64")))
with lock:
    out.write(b"ready\n")
    out.flush()
for line in sys.stdin.buffer:
    line = line.rstrip(b"\n")
    if line:
        pool.submit(one, line)
pool.shutdown(wait=True)
