"""glibc malloc tuning: applied once, respectful of the user's settings, and it
removes the page faults of repeated batches (counted, not timed)."""

import json
import os
import platform
import subprocess
import sys

import pytest

# the fast tier (make test-fast) leaves this module out: it runs inference in fresh processes
pytestmark = pytest.mark.slow

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# Runs Inference twice on the same minute of audio in a fresh process and reports
# the minor page faults of the second run (the first one warms the allocator up).
FAULTS = """
import json, resource, sys
import numpy as np, soundfile as sf, torch
from skseg import Inference, fetch_sample
from skseg.allocator import tune_malloc
torch.set_num_threads(2)
wav, sr = sf.read(fetch_sample()["audio"], dtype="float32")
sf.write(sys.argv[1], np.tile(wav, 2), sr)
inference = Inference("pyannote/segmentation")
first = inference(sys.argv[1]).data
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
second = inference(sys.argv[1]).data
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": tune_malloc(), "faults": faults,
                  "same": bool(np.array_equal(first, second))}))
"""


def run_faults(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("GLIBC_TUNABLES", None)
    environ.pop("SKSEG_MALLOC_TUNING", None)
    run = subprocess.run(
        [sys.executable, "-c", FAULTS, str(tmp_path / "minute.wav")],
        capture_output=True,
        text=True,
        env={**environ, **env},
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[-1])


def test_inference_reuses_its_memory_instead_of_faulting_it_in(tmp_path):
    tuned = run_faults(tmp_path)
    assert tuned["same"]
    if not GLIBC:  # nothing to tune: the settings are glibc's
        assert not tuned["applied"]
        return
    default = run_faults(tmp_path, SKSEG_MALLOC_TUNING="0")
    assert tuned["applied"] and not default["applied"]
    assert default["same"]
    # 119 chunks: each batch's tens of MB of activations used to be faulted in
    # again (measured: 75,000 faults); kept, none to a few thousand remain
    assert tuned["faults"] < 20_000, tuned
    assert tuned["faults"] * 5 < default["faults"], (tuned, default)


def test_the_users_own_malloc_settings_win():
    code = "from skseg.allocator import tune_malloc; print(tune_malloc())"
    for env in (
        {"MALLOC_TRIM_THRESHOLD_": "1000000"},
        {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1000000"},
        {"SKSEG_MALLOC_TUNING": "off"},
    ):
        run = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
        )
        assert run.stdout.strip() == "False", (env, run.stderr)
