"""Run tools/train.py on 2 gloo CPU processes with torchrun, for the multi-process tests."""
import os
import subprocess
import sys
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def torchrun_train(config_path, work_dir, *, extra_paths=(), nproc: int = 2,
                   timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node nproc tools/train.py CONFIG --launcher pytorch``.

    ``--standalone`` picks a free rendezvous port, so runs never collide. ``extra_paths`` go on
    PYTHONPATH (modules named in the config's ``custom_imports``). One thread per process. The
    run must succeed (its stderr tail is the assertion message).
    """
    path = os.pathsep.join([*map(str, extra_paths), REPO, os.environ.get('PYTHONPATH', '')])
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=path)
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node',
               str(nproc), 'tools/train.py', str(config_path), '--launcher', 'pytorch',
               '--work-dir', str(work_dir)]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=env)
    if proc.returncode != 0 and GLOO_ABORT in proc.stderr:
        # a worker occasionally aborts in C++ (std::terminate) with gloo on CPU, seen about once
        # in six 2-process FSDP runs; not yet explained: run once more, and say so
        warnings.warn(f'torchrun worker aborted ({GLOO_ABORT!r}); running {config_path} again')
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


GLOO_ABORT = 'terminate called without an active exception'
