"""tools/gpu_check.sh on the CPU with tiny settings (the CUDA run is for a machine with a GPU),
and --torch-device cuda refused in one line where there is no CUDA."""

import os
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent
TINY = {"GPU_CHECK_DATA": "digits", "GPU_CHECK_RES": "32", "GPU_CHECK_EPOCHS": "1",
        "GPU_CHECK_BATCH": "64", "GPU_CHECK_SUBSET": "128", "GPU_CHECK_ARCHS": "4",
        "GPU_CHECK_DEPLOY": "2", "GPU_CHECK_RETRAIN": "1", "GPU_CHECK_RETRAIN_EPOCHS": "1",
        "GPU_CHECK_BN_IMAGES": "128", "GPU_CHECK_VAL_IMAGES": "128", "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_gpu_check_runs_on_the_cpu_with_tiny_settings(tmp_path):
    pp = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    r = subprocess.run([str(ROOT / "tools" / "gpu_check.sh"), "--torch-device", "cpu"],
                       env={**os.environ, **TINY, "HWNAS_HOME": str(tmp_path), "PYTHONPATH": pp},
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for what in ("supernet epoch 1:", "images/s", "score 4 archs", "deploy arch", "retrain arch",
                 "gpu_check: done"):
        assert what in r.stdout, (what, r.stdout)
    assert list((tmp_path / "runs" / "supernets").glob("*/checkpoint.pt"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("args", [
    ("supernet", "train", "--space", "mobilenetv2", "--data", "digits", "-r", "32"),
    ("score", "mbv2-0.35", "--data", "digits", "-r", "32"),
    ("retrain", "nope"),
])
def test_torch_device_cuda_without_cuda_is_one_line(cli, args):
    r = cli(*args, "--torch-device", "cuda")
    assert_one_line_error(r, "--torch-device cuda")
