"Data parallel across real processes: two gloo workers under torchrun take the simulator's steps."
import os, shutil, subprocess, sys
from pathlib import Path

import torch

from lowcomm.core import RunRecord, flatten
from lowcomm.distributed.dp import DataParallel, DataParallelConfig

TORCHRUN = shutil.which('torchrun', path=str(Path(sys.executable).parent)) or shutil.which('torchrun')


def test_two_processes_equal_the_simulator(tmp_path):
    cfg = DataParallelConfig(model='tiny', max_docs=40, batch_size=4, seq_len=32, lr=3e-3, warmup=2, eval_batches=2, workers=2,
                             steps=8, eval_every=4, checkpoint_every=1)   # old checkpoints get removed: by the main process only
    flags = [x for k, v in cfg.to_dict().items() for x in (f'--{k}', str(v)) if v != '']
    p = subprocess.run([TORCHRUN, '--standalone', '--nproc_per_node', '2', '-m', 'lowcomm.cli', 'data_parallel',
                        '--run_dir', str(tmp_path/'run'), *flags], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert p.returncode == 0, p.stdout + p.stderr
    torch.set_num_threads(1)                       # as torchrun sets OMP_NUM_THREADS=1 for each process
    sim = DataParallel(cfg)
    sim.fit(progress=False)
    real = RunRecord(tmp_path/'run')
    model = real.load_checkpoint()['model']
    torch.testing.assert_close(flatten(model.values()), flatten(sim.model.state_dict().values()), rtol=1e-5, atol=1e-6)
    assert abs(real.metrics('eval')[-1]['loss'] - sim.eval_loss) < 1e-5, (real.metrics('eval'), sim.eval_loss)
