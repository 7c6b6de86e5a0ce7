"""Time the torchrun restart path: SIGKILL one worker of a 2-process `lowcomm diloco` job and measure, from the kill,
when the restarted group's processes appear (torchrun's part), when they log their `start` row, and when the next round is
done. Run it from a folder without a `lowcomm/` of its own; PYTHONPATH=TREE times another checkout's lowcomm (A/B).

    OMP_NUM_THREADS=1 .venv/bin/python tools/bench_restart.py --runs 5          # prints one JSON line per run, then a summary
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

TORCHRUN = str(Path(sys.executable).parent/'torchrun')
FLAGS = ['--model', 'tiny', '--workers', '2', '--batch_size', '8', '--seq_len', '64', '--H', '100', '--steps', '20000']


def pids(run_dir, rank=None) -> dict[int, float]:
    "The lowcomm.cli processes of the job in `run_dir` (of `rank`, or all): {pid: start time, epoch seconds}."
    boot = time.time() - float(Path('/proc/uptime').read_text().split()[0])
    out = {}
    for proc in Path('/proc').iterdir():
        try:
            cmd, env = (proc/'cmdline').read_bytes(), (proc/'environ').read_bytes().split(b'\0')
            stat = (proc/'stat').read_text().rsplit(')', 1)[1].split()
        except (OSError, ValueError): continue
        if str(run_dir).encode() in cmd and b'lowcomm.cli' in cmd and any(e.startswith(f'RANK={"" if rank is None else rank}'.encode()) for e in env):
            out[int(proc.name)] = boot + int(stat[19]) / os.sysconf('SC_CLK_TCK')
    return out


def rows(run_dir, event):
    p = Path(run_dir)/'metrics.jsonl'
    if not p.exists(): return []
    out = []
    for line in p.read_text().splitlines():
        try: r = json.loads(line)
        except json.JSONDecodeError: continue
        if r['event'] == event: out.append(r)
    return out


def wait(cond, timeout, what):
    deadline = time.time() + timeout
    while not (v := cond()):
        if time.time() > deadline: raise TimeoutError(what)
        time.sleep(0.01)
    return v


def one_run(run_dir, kill_round: int) -> dict:
    job = subprocess.Popen([TORCHRUN, '--standalone', '--nproc_per_node', '2', '--max-restarts', '3', '-m', 'lowcomm.cli', 'diloco',
                            '--run_dir', str(run_dir), *FLAGS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait(lambda: len(rows(run_dir, 'round')) >= kill_round, 300, 'the first rounds')
        time.sleep(0.3)                                           # mid-round
        victim = list(pids(run_dir, rank=1))
        os.kill(victim[0], signal.SIGKILL); killed = time.time()
        start = wait(lambda: [r for r in rows(run_dir, 'start') if r['time'] > killed], 120, 'the restarted start row')[0]
        spawned = min(t for p, t in pids(run_dir).items())
        done = wait(lambda: [r for r in rows(run_dir, 'round') if r['time'] > killed], 120, 'the next round')[0]
        return {'spawn_s': round(spawned - killed, 2), 'start_s': round(start['time'] - killed, 2),
                'next_round_s': round(done['time'] - killed, 2), 'resumed_round': start['round']}
    finally:
        os.killpg(job.pid, signal.SIGKILL); job.wait()             # the agent, then its workers (sessions of their own)
        for p in pids(run_dir):
            try: os.kill(p, signal.SIGKILL)
            except ProcessLookupError: pass


if __name__ == '__main__':
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument('--runs', type=int, default=3); a.add_argument('--kill_round', type=int, default=2)
    args = a.parse_args()
    results = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as d:
            results.append(one_run(Path(d)/'run', args.kill_round)); print(json.dumps(results[-1]), flush=True)
    for k in ('spawn_s', 'start_s', 'next_round_s'):
        v = [r[k] for r in results]
        print(f"{k}: min {min(v):.2f} / median {statistics.median(v):.2f} / max {max(v):.2f} s over {len(v)} runs")
