"""Runner B: one fresh python3 process per job. Reads the job (JSON) on stdin, writes its
result (JSON) on stdout and exits, as process- and container-based sandboxes do."""

import json
import sys

from jobrun import run_job

result = run_job(sys.stdin.buffer.read())
sys.__stdout__.write(json.dumps(result))
sys.__stdout__.flush()
