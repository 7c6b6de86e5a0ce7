"`python -m lowcomm.gpu_check` (what tools/gpu_check.sh runs): the CPU smoke end to end, the deadline, and the no-GPU line."
import json, os, subprocess, sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).parents[1]


def gpu_check(*args, tmp_path) -> subprocess.CompletedProcess:
    "Run `python -m lowcomm.gpu_check ARGS` offline, with its caches in `tmp_path`."
    env = {**os.environ, 'LOWCOMM_CACHE': str(tmp_path/'cache'), 'HF_DATASETS_CACHE': str(tmp_path/'hf'),
           'HF_DATASETS_OFFLINE': '1', 'HF_HUB_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    return subprocess.run([sys.executable, '-m', 'lowcomm.gpu_check', *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cpu_smoke_writes_the_record(tmp_path):
    out, work = tmp_path/'out'/'gpu-check.json', tmp_path/'work'
    r = gpu_check('--cpu-smoke', out, '--work_dir', work, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(out.read_text())
    assert set(rec) == {'device', 'device_name', 'device_count', 'torch', 'cuda', 'python', 'plan', 'throughput', 'diloco',
                        'commands', 'wall_s', 'date'}
    assert (rec['device'], rec['torch'], rec['plan']['preset'], rec['plan']['workers']) == ('cpu', torch.__version__, 'tiny', 8)
    t = rec['throughput']
    assert t['tokens_per_s'] > 0 and t['tokens_per_step'] == 4 * 64
    assert (t['mfu'], t['mfu_counted'], t['peak_flops']) == (None, None, None) and 'no bf16 peak known' in t['mfu_note']
    d = rec['diloco']
    assert (d['ended'], d['rounds_done'], len(d['eval_loss']), len(d['round_s'])) == ('finished', 2, 2, 2)
    assert d['bytes_sent'] == [8 * 4 * t['params']] * 2             # 8 workers send the whole fp32 model each round
    assert d['bytes_sent_total'] == sum(d['bytes_sent'])
    assert '--corpus' in d['command'] and 'c4-stdlib.json.gz' in d['command'] and '--device cpu' in d['command']
    assert rec['commands']['diloco'] == d['command'] and '--cpu-smoke' in rec['commands']['check']
    assert 'gpu_check' in r.stdout and 'DiLoCo round 2: eval loss' in r.stdout
    assert not (work/'diloco'/'checkpoints').exists()               # deleted after the run; the metrics stay
    assert (work/'diloco'/'metrics.jsonl').exists()


def test_deadline_stops_diloco_and_still_writes(tmp_path):
    out = tmp_path/'out.json'
    r = gpu_check('--cpu-smoke', out, '--work_dir', tmp_path/'work', '--budget_s', 1, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    d = json.loads(out.read_text())['diloco']
    assert (d['ended'], d['rounds_done'], d['eval_loss']) == ('stopped at the deadline', 0, [])


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a GPU: the no-GPU path does not apply')
def test_no_gpu_prints_one_line_and_writes_nothing(tmp_path):
    r = gpu_check('--out', tmp_path/'x'/'gpu-check.json', '--work_dir', tmp_path/'work', tmp_path=tmp_path)
    assert r.returncode == 0 and r.stderr == ''
    assert r.stdout.count('\n') == 1 and r.stdout.startswith('gpu_check: no CUDA device visible')
    assert sorted(p.name for p in tmp_path.iterdir()) == []
