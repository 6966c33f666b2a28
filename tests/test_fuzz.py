"""The fuzzing harness (tests/fuzz.py), bounded for the normal test run.

Every target runs in one subprocess: a hang is caught by the timeout, and the
subprocess's peak memory is checked. A release runs longer (``make fuzz``).
"""

import json
import os
import subprocess
import sys

import pytest

import skseg

from . import fuzz

# the fast tier (make test-fast) leaves this module out: it runs the fuzzing harness in a subprocess
pytestmark = pytest.mark.slow


def test_every_reader_of_untrusted_files_holds_its_invariant():
    root = os.path.dirname(os.path.dirname(os.path.abspath(skseg.__file__)))
    env = {k: v for k, v in os.environ.items() if k != "SKSEG_FUZZ_EXAMPLES"}
    env["PYTHONPATH"] = root
    out = subprocess.run(
        [sys.executable, "-m", "tests.fuzz"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=root,
        env=env,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["examples"] == {name: fuzz.EXAMPLES for name in fuzz.TARGETS}
    assert len(report["examples"]) == 10
    # the inputs are at most a few KB: nothing may cost more than a few of them
    assert report["grown_mib"] < 256
