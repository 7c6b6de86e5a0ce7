"Running the `lowcomm` command as a user does, for the integration tests."
import re, shutil, signal, subprocess, sys, time
from pathlib import Path

from lowcomm.core import RunRecord


def lowcomm_cmd() -> list[str]:
    "The venv's `lowcomm` console command (else `python -m lowcomm.cli`)."
    exe = shutil.which('lowcomm', path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, '-m', 'lowcomm.cli']


def lowcomm(*args, cwd, env=None, timeout=900) -> subprocess.CompletedProcess:
    "Run `lowcomm ARGS` in `cwd` to completion, capturing its output."
    return subprocess.run([*lowcomm_cmd(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def checkpoint_step(cp: Path) -> int:
    "The step (or unit) of checkpoint file `cp`."
    return int(re.fullmatch(r'step-(\d+)\.pt', cp.name).group(1))


def kill_at_checkpoint(victim: subprocess.Popen, run_dir, step: int, timeout: float):
    "SIGKILL `victim` once `run_dir` holds a checkpoint of `step` or later; fail if it exits first, or none comes in time."
    deadline = time.monotonic() + timeout
    try:
        while not any(checkpoint_step(cp) >= step for cp in RunRecord(run_dir).checkpoints()):
            assert victim.poll() is None, f"the run exited ({victim.returncode}) before its step-{step} checkpoint"
            assert time.monotonic() < deadline, f"no step-{step} checkpoint in time"
            time.sleep(0.02)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL, "the run finished before it could be killed"
    finally:
        if victim.poll() is None: victim.kill(); victim.wait()
