"Running the `lowcomm` command as a user does, for the integration tests."
import shutil, subprocess, sys
from pathlib import Path


def lowcomm_cmd() -> list[str]:
    "The venv's `lowcomm` console command (else `python -m lowcomm.cli`)."
    exe = shutil.which('lowcomm', path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, '-m', 'lowcomm.cli']


def lowcomm(*args, cwd, env=None, timeout=900) -> subprocess.CompletedProcess:
    "Run `lowcomm ARGS` in `cwd` to completion, capturing its output."
    return subprocess.run([*lowcomm_cmd(), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
