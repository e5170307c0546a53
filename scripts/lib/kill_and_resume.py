"""Run a training command, kill it (the launcher and every rank, with SIGKILL) once its run folder holds a
complete checkpoint of step K, rerun the same command, and check that the rerun resumed from a checkpoint and
finished. What a user does after a crash of a multi-GPU run; used by scripts/gpu_check.sh for FSDP and ZeRO-3.

    python scripts/lib/kill_and_resume.py RUN_DIR K -- accelerate launch ... -m samora.cli train ... output_dir=RUN_DIR

Exit 0 when the rerun exited 0 and said it resumed; 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # accelerate's dependency

WAIT_S = 600


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    run_dir, step, command = Path(argv[0]), int(argv[1]), argv[3:]
    marker = run_dir / "adapter" / f"checkpoint-{step}" / "trainer_state.json"  # written last in a checkpoint
    process = subprocess.Popen(command)
    deadline = time.monotonic() + WAIT_S
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            print(f"kill_and_resume: the run ended or stalled before {marker} appeared", file=sys.stderr)
            return 1
        time.sleep(0.05)
    ranks = psutil.Process(process.pid).children(recursive=True)  # torch's launcher gives each rank its own session
    for victim in [process, *ranks]:
        victim.send_signal(signal.SIGKILL)
    process.wait()
    psutil.wait_procs(ranks, timeout=60)
    print(f"kill_and_resume: killed the run after {marker.parent.name}; rerunning the same command", flush=True)
    rerun = subprocess.run(command, capture_output=True, text=True)
    sys.stdout.write(rerun.stdout)
    sys.stderr.write(rerun.stderr)
    if rerun.returncode != 0 or f"resuming the unfinished run in {run_dir}" not in rerun.stderr:
        print(f"kill_and_resume: the rerun exited {rerun.returncode} without resuming", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
