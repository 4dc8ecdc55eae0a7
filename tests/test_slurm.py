"""The whole graph on a real SLURM: a single-node cluster started on this machine (tests/slurm/cluster.py), the
repository's profile (workflow/profiles/slurm), every job through sbatch, and the same numbers as a local run.

Skipped, with the reason, where SLURM cannot be started (not root, slurm-wlm / munge missing).
"""
import json
import os
import re
import subprocess
import time

import numpy as np
import pytest

from tests.conftest import BIN, REPO, snakemake_executable
from tests.slurm.cluster import LocalSlurm, SlurmUnavailable, missing_requirements

CONFIG = REPO / "tests" / "configs" / "tiny_slurm.yaml"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
VOLATILE = {"timings"}  # wall-clock seconds: the only part of a result that may differ between two runs


def snakemake_command(workdir, *args, configfiles=()):
    """snakemake on CONFIG (and `configfiles` merged over it, in order)."""
    return [snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(CONFIG), *map(str, configfiles), *args]


def environment(base=None):
    base = dict(os.environ if base is None else base)
    return {**base, "PATH": f"{BIN}{os.pathsep}{base['PATH']}", "PYTHONPATH": str(REPO)}


def failure_report(workdir, result):
    logs = [f"--- {p}\n{p.read_text(errors='replace')[-2500:]}"
            for p in sorted(list((workdir / "logs").rglob("*.log")) + list((workdir / ".snakemake").rglob("*.log")))
            if "rror" in p.read_text(errors="replace")]
    return f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}\n" + "\n".join(logs[-6:])


def read_results(workdir):
    results = {}
    for path in sorted((workdir / "results").glob("*.json")):
        record = json.loads(path.read_text())
        results[path.name] = {k: v for k, v in record.items() if k not in VOLATILE}
    return results


def unavailable(reason):
    """Skip with the reason; fail under ACTIONFLOW_SLURM=required (.ci/run: CI must run the SLURM tests)."""
    if os.environ.get("ACTIONFLOW_SLURM") == "required":
        pytest.fail(f"ACTIONFLOW_SLURM=required, but SLURM cannot be started here: {reason}")
    pytest.skip(f"SLURM cannot be started here: {reason}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = missing_requirements()
    if reason:
        unavailable(reason)
    try:
        with LocalSlurm(tmp_path_factory.mktemp("slurm")) as running:
            yield running
    except SlurmUnavailable as error:
        unavailable(str(error)[:2000])


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_whole_graph_through_sbatch_matches_local_run(cluster, tmp_path):
    local_dir, slurm_dir = tmp_path / "local", tmp_path / "slurm"
    local_dir.mkdir()
    slurm_dir.mkdir()
    started = time.monotonic()
    # the local run shares the 2 cores with SLURM's jobs; both are single-threaded per job, so numbers do not change
    local = subprocess.Popen(snakemake_command(local_dir, "--cores", "1", "all"), env=environment(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slurm = subprocess.run(
        snakemake_command(
            slurm_dir, "--profile", str(PROFILE), "all",
            "--slurm-no-account",                    # no accounting database on the test cluster
            "--slurm-status-command", "squeue",      # no sacct either; MinJobAge=600 keeps finished jobs visible
            "--slurm-init-seconds-before-status-checks", "1",
            "--slurm-keep-successful-logs",
            "--latency-wait", "5",
            "--retries", "0",                        # a failure here is a bug, not bad luck: show it at once
        ),
        env=environment(cluster.env), capture_output=True, text=True)
    local_out, local_err = local.communicate()
    elapsed = time.monotonic() - started
    assert slurm.returncode == 0, "SLURM run failed:\n" + failure_report(slurm_dir, slurm)
    assert local.returncode == 0, f"local run failed:\n{local_out[-3000:]}\n{local_err[-6000:]}"

    # every job of the graph (all but the target rule `all`, a local rule) went through sbatch and completed
    steps = int(re.search(r"(\d+) of \d+ steps \(100%\) done", local_err).group(1))
    jobs = cluster.jobs()
    assert len(jobs) == steps - 1, (steps, jobs)
    assert {state for _, _, state in jobs} == {"COMPLETED"}, jobs
    slurm_logs = list((slurm_dir / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(slurm_logs) == steps - 1, slurm_logs
    rules = {p.relative_to(slurm_dir / ".snakemake" / "slurm_logs").parts[0] for p in slurm_logs}
    assert {"rule_train", "rule_evaluate", "rule_frames", "rule_flow", "rule_joint", "rule_summary"} <= rules, rules

    # the same numbers: results JSON (but wall-clock timings) and the per-video test scores, bit for bit
    local_results, slurm_results = read_results(local_dir), read_results(slurm_dir)
    assert sorted(slurm_results) == ["tsn_synthetic_flow.json", "tsn_synthetic_joint.json",
                                     "tsn_synthetic_joint.sweep.json", "tsn_synthetic_rgb.json"]
    assert slurm_results == local_results
    for mode in ("rgb", "flow"):
        with np.load(local_dir / "work" / f"tsn_synthetic_{mode}" / "test_scores.npz") as a, \
                np.load(slurm_dir / "work" / f"tsn_synthetic_{mode}" / "test_scores.npz") as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{mode} {key}")
    assert (local_dir / "results" / "summary.csv").read_text() == (slurm_dir / "results" / "summary.csv").read_text()
    print(f"SLURM and local runs of {steps - 1} jobs each: {elapsed:.0f} s")


# ------------------------------------------------------------------ the sbatch lines the plugin makes (fast)

class FakeResources(dict):
    __getattr__ = dict.__getitem__


class FakeJob:
    def __init__(self, threads, **resources):
        self.threads = threads
        self.resources = FakeResources(resources)


def sbatch_line(job):
    plugin = pytest.importorskip("snakemake_executor_plugin_slurm")
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    params = {"run_uuid": "u", "slurm_logfile": "l", "comment_str": "c", "account": "", "partition": "",
              "workdir": "/w"}
    assert plugin  # the plugin the profile names is installed
    return get_submit_command(job, params) + set_gres_string(job)


def test_profile_and_rule_resources_give_clean_sbatch_lines():
    """The train rule's resources (workflow/rules/common.smk, train_resources) as the plugin turns them into sbatch
    flags: no --gpus beside --gres, no --ntasks-per-gpu, one task per node for multi-node torchrun."""
    cpu = sbatch_line(FakeJob(2, gpu=0, mem_mb=32000, runtime=1440))
    assert "--ntasks=1" in cpu and "--cpus-per-task=2" in cpu and "--gpus" not in cpu and "--gres" not in cpu
    one_node = sbatch_line(FakeJob(16, gpu=4, gpu_model="a100", mem_mb=32000, runtime=1440))
    assert "--gpus=a100:4" in one_node and "--cpus-per-task=16" in one_node
    assert "--ntasks-per-gpu" not in one_node and "--gres" not in one_node
    nodes = sbatch_line(FakeJob(32, gpu=0, nodes=2, tasks=2, mpi="srun", gres="gpu:4", tasks_per_gpu=0,
                                mem_mb=32000, runtime=1440))
    assert "--nodes=2" in nodes and "--ntasks=2" in nodes and "--gres=gpu:4" in nodes
    assert "--cpus-per-task=32" in nodes and "--gpus" not in nodes and "--ntasks-per-gpu" not in nodes
    # the trap the rule avoids: `tasks` on a GPU job turns into --ntasks-per-gpu
    assert "--ntasks-per-gpu=2" in sbatch_line(FakeJob(32, nodes=2, tasks=2, mpi="srun", gres="gpu:4"))


def test_profiles_parse_and_the_local_one_is_not_loaded_implicitly(tmp_path):
    import yaml

    slurm = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["slurm-requeue"] is True and slurm["retries"] >= 1
    assert slurm["rerun-incomplete"] is True
    for rule in ("train", "evaluate"):
        assert {"mem_mb", "runtime"} <= set(slurm["set-resources"][rule])
        assert not {"gpu", "gres", "tasks", "cpus_per_gpu"} & set(slurm["set-resources"][rule])
    result = subprocess.run(snakemake_command(tmp_path, "--profile", str(PROFILE), "-n", "all"), env=environment(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using profile" in result.stderr and "workflow specific profile" not in result.stderr
