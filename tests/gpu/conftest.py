"""tests/gpu: checks that need CUDA GPUs (NCCL DDP at the recipes' sizes with AMP, SIGTERM and resume). Skipped
without CUDA; ACTIONFLOW_GPU_CHECK_ON_CPU=1 smoke-runs the same code on the CPU (gloo, tiny models) to test the tests.

    python -m pytest tests/gpu -v            # on a machine with 1+ GPUs (2 used when there are 2); < 5 min

At the end pytest prints one line per model: clips/s per GPU, the fraction of step time spent waiting for data, and
the peak GPU memory.
"""
import os
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
ON_CPU = os.environ.get("ACTIONFLOW_GPU_CHECK_ON_CPU") == "1"
REPORT = []  # (check, {measurements}) rows printed after the run


@pytest.fixture(scope="session")
def gpu_report():
    """Append (check name, log.jsonl record) to have it printed in the summary."""
    return REPORT


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available() or ON_CPU:
        return
    skip = pytest.mark.skip(reason="no CUDA GPU (tests/gpu runs on a GPU machine; docs/development.md, 'Tests')")
    for item in items:
        if HERE in Path(item.fspath).parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not REPORT:
        return
    terminalreporter.section("GPU check: per process (GPU)")
    terminalreporter.write_line(f"{'check':42s} {'clips/s':>9s} {'data wait':>9s} {'peak MB':>9s}")
    for name, record in REPORT:
        peak = record.get("peak_memory_mb")
        terminalreporter.write_line(f"{name:42s} {record['clips_per_second']:9.1f} "
                                    f"{record['data_wait_fraction']:9.1%} {peak if peak is not None else '-':>9}")
