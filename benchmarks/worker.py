"""Running one benchmark job in a fresh Python process (a cold start each time): the
script is called again with ``--worker JOB`` and prints ``RESULT {json}`` last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_worker(script: str, job: dict[str, Any], cwd: Path, tail: int = 12) -> dict[str, Any]:
    """``script --worker JOB`` in a new process; its result, or the job with the error and
    the last ``tail`` lines of its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, str(Path(script).resolve()), "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(cwd),
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return result
    lines = (proc.stderr or proc.stdout).strip().splitlines()[-tail:]
    return {**job, "error": f"worker exited {proc.returncode}:\n" + "\n".join(lines)}
