"""The whole graph on a real SLURM of three hosts (tests/slurm/cluster.py, MultiHostSlurm: network namespaces on a
private bridge, one slurmd each, a shared working directory), through the repository's profile, with every training
on two nodes (srun + one torchrun per host, c10d rendezvous on the first, gloo), and the two things that make a
cluster a cluster happening during the run:

* preemption: the rgb training is requeued (`scontrol requeue`) once its first epoch is checkpointed; the same job
  starts again and resumes from its checkpoint;
* a lost host: once the flow training has its first epoch, one of its two hosts dies (link down, every process on it
  killed); slurmctld marks it DOWN, the job is requeued (NODE_FAIL) or fails and Snakemake retries it, and it
  resumes on the surviving hosts.

Both must end exactly as the same trainings on one node with two processes (same seed, same total batch), run
locally beside it. Skipped, with the reason, where SLURM or network namespaces are unavailable, unless
ACTIONFLOW_SLURM=required (.ci/run), which makes that a failure.
"""
import json
import re
import subprocess
import threading
import time

import numpy as np
import pytest

from tests.conftest import REPO
from tests.slurm.cluster import MultiHostSlurm, SlurmUnavailable, missing_multihost_requirements
from tests.test_slurm import PROFILE, environment, failure_report, read_results, snakemake_command, unavailable

NODES2 = REPO / "tests" / "configs" / "tiny_slurm_nodes2.yaml"
MODES = ("rgb", "flow")
# Both runs together are killed (and the test fails) past this: a broken rendezvous hangs rather than fails (c10d
# waits 600 s for the missing node). Generous for loaded machines; what a run took is printed (-s).
DEADLINE_S = 1200
pytestmark = pytest.mark.timeout(DEADLINE_S + 300)  # + starting and stopping the cluster


def leftovers(cluster_names):
    """Which of the cluster's namespaces and links still exist."""
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [name for name in cluster_names if f"{name} " in names or f"{name}\n" in names or f" {name}:" in links
            or f" {name}@" in links]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = missing_multihost_requirements()
    if reason:
        unavailable(reason)
    try:
        with MultiHostSlurm(tmp_path_factory.mktemp("slurm-hosts"), hosts=3, cpus=1) as running:
            names = [*running.namespaces.values(), *running.veths.values(), running.bridge]
            yield running
    except SlurmUnavailable as error:
        unavailable(str(error)[:3000])
    assert not leftovers(names), f"the cluster left {leftovers(names)} behind"
    assert all(process.poll() is not None for process in running.processes.values())


def test_a_failed_start_leaves_nothing_behind(tmp_path, monkeypatch):
    """The network is made before the daemons: a start that fails after it (here: slurmctld never answers)
    still removes every namespace, veth and the bridge, and stops the daemons it started."""
    reason = missing_multihost_requirements()
    if reason:
        unavailable(reason)
    from tests.slurm import cluster as module

    made = {}
    original = MultiHostSlurm._create_network

    def create_then_remember(self):
        original(self)
        made["names"] = [*self.namespaces.values(), *self.veths.values(), self.bridge]
        made["processes"] = self.processes

    real_tool = module._tool
    monkeypatch.setattr(MultiHostSlurm, "_create_network", create_then_remember)
    monkeypatch.setattr(module, "_tool", lambda name: "/bin/false" if name == "slurmctld" else real_tool(name))
    with pytest.raises(SlurmUnavailable, match="slurmctld exited"):
        with MultiHostSlurm(tmp_path / "cluster", hosts=2):
            pass
    assert made["names"] and not leftovers(made["names"])
    assert made["processes"] == {}


def train_job(cluster, mode):
    """(job id, state, hosts) of the newest sbatch job of the `mode` training, or None."""
    rows = [line.split("|") for line in cluster.run("squeue", "-h", "-t", "all", "-o", "%i|%k|%T|%N").stdout.split(
        "\n") if line.strip()]
    rows = [row for row in rows if row[1].startswith("rule_train_") and row[1].endswith(f"_{mode}")]
    if not rows:
        return None
    job_id, _, state, nodelist = max(rows, key=lambda row: int(row[0].split("_")[0]))
    hosts = cluster.run("scontrol", "show", "hostnames", nodelist).stdout.split() if nodelist else []
    return job_id, state, hosts


def job_field(cluster, job_id, field):
    text = cluster.run("scontrol", "-o", "show", "job", job_id).stdout
    return dict(part.split("=", 1) for part in text.split() if "=" in part).get(field)


def release_when_held(cluster, job_id, deadline):
    """A requeued job waits 120 s (SLURM's BeginTime hold after a requeue); start it as soon as it is pending.
    False when the job ended instead (failed: Snakemake's retry submits a new one)."""
    while time.monotonic() < deadline:
        state = job_field(cluster, job_id, "JobState")
        if state == "PENDING":
            cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
            return True
        if state in ("COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", None):
            return False
        time.sleep(0.3)
    return False


class Disturber(threading.Thread):
    """Watches the trainings of the SLURM run: requeues the rgb one and kills a host of the flow one, each as soon as
    its first epoch is checkpointed (and before its last: 16 epochs), and records what it did."""

    def __init__(self, cluster, workdir, deadline):
        super().__init__(daemon=True)
        self.cluster, self.workdir, self.deadline = cluster, workdir, deadline
        self.events = {}
        self.error = None
        self.done = threading.Event()

    def first_epoch(self, mode):
        run = self.workdir / "work" / f"tsn_synthetic_{mode}"
        return (run / "checkpoints" / "epoch_0001.pt").exists() and not (run / "final.pt").exists()

    def running_job(self, mode):
        job = train_job(self.cluster, mode)
        return job if job and job[1] == "RUNNING" and len(job[2]) == 2 else None

    def run(self):
        try:
            pending = list(MODES)
            while pending and time.monotonic() < self.deadline and not self.done.is_set():
                for mode in list(pending):
                    job = self.first_epoch(mode) and self.running_job(mode)
                    if not job:
                        continue
                    job_id, _, hosts = job
                    if mode == "rgb":
                        result = self.cluster.run("scontrol", "requeue", job_id)
                        assert result.returncode == 0, result.stderr
                        self.events[mode] = {"job": job_id, "hosts": hosts, "at": time.monotonic()}
                    else:
                        lost = hosts[1]  # not the rendezvous host: the survivor must notice on its own
                        self.cluster.lose(lost)
                        self.events[mode] = {"job": job_id, "hosts": hosts, "lost": lost, "at": time.monotonic()}
                    self.events[mode]["released"] = release_when_held(self.cluster, job_id, self.deadline)
                    pending.remove(mode)
                time.sleep(0.2)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """The SLURM run (disturbed) and the local one-node reference, side by side; their directories and what
    happened."""
    root = tmp_path_factory.mktemp("multihost")
    slurm_dir, local_dir = root / "slurm", root / "local"
    slurm_dir.mkdir()
    local_dir.mkdir()
    one_node = root / "one_node.yaml"  # the same trainings on one node: 2 processes, as 2 nodes x 1 process
    one_node.write_text("train: {nodes: 1, nproc_per_node: 2, threads: 2}\n")
    started = time.monotonic()
    deadline = started + DEADLINE_S
    targets = [f"results/tsn_synthetic_{mode}.json" for mode in (*MODES, "joint")]
    local = subprocess.Popen(snakemake_command(local_dir, "--cores", "2", *targets, configfiles=[NODES2, one_node]),
                             env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    slurm = subprocess.Popen(
        snakemake_command(
            slurm_dir, "--profile", str(PROFILE), "all",
            "--slurm-no-account",                    # no accounting database on the test cluster
            "--slurm-status-command", "squeue",      # no sacct either; MinJobAge=600 keeps finished jobs visible
            "--slurm-init-seconds-before-status-checks", "1",
            "--slurm-keep-successful-logs",
            "--latency-wait", "5",                   # retries: 2, as in the profile
            configfiles=[NODES2]),
        env=environment(cluster.env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    disturber = Disturber(cluster, slurm_dir, deadline)
    disturber.start()
    outputs = {}
    try:
        for name, process in (("slurm", slurm), ("local", local)):
            try:
                out, err = process.communicate(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
                err += f"\n(killed after {DEADLINE_S} s)"
            outputs[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    finally:
        disturber.done.set()
        disturber.join(timeout=60)
        for process in (slurm, local):
            if process.poll() is None:
                process.kill()
                process.wait()
    return {"slurm_dir": slurm_dir, "local_dir": local_dir, "slurm": outputs["slurm"], "local": outputs["local"],
            "events": disturber.events, "disturber_error": disturber.error, "seconds": time.monotonic() - started}


@pytest.mark.slow
def test_runs_finish(runs, cluster):
    assert runs["disturber_error"] is None, repr(runs["disturber_error"])
    slurm, local = runs["slurm"], runs["local"]
    assert slurm.returncode == 0, "SLURM run failed:\n" + failure_report(runs["slurm_dir"], slurm) + cluster.logs()
    assert local.returncode == 0, f"local run failed:\n{local.stdout[-3000:]}\n{local.stderr[-6000:]}"
    print(f"multi-host SLURM run and local run: {runs['seconds']:.0f} s")


@pytest.fixture(scope="module")
def finished(runs):
    if runs["slurm"].returncode != 0 or runs["local"].returncode != 0 or runs["disturber_error"]:
        pytest.fail("the runs failed: see test_runs_finish")
    return runs


@pytest.mark.slow
def test_shards_land_on_several_hosts(finished, cluster):
    rows = [line.split("|") for line in cluster.run("squeue", "-h", "-t", "all", "-o", "%k|%N|%T").stdout.splitlines()]
    hosts = {row[1] for row in rows if row[0].startswith(("rule_frames_", "rule_flow_")) and row[2] == "COMPLETED"}
    assert len(hosts) >= 2, rows


@pytest.mark.slow
def test_two_node_trainings_equal_the_one_node_trainings(finished):
    slurm_dir, local_dir = finished["slurm_dir"], finished["local_dir"]
    import torch

    for mode in MODES:
        log = (slurm_dir / "logs" / "train" / f"tsn_synthetic_{mode}.log").read_text()
        assert "--nnodes 2" in log and "--rdzv-backend c10d" in log, log[-3000:]
        final = torch.load(slurm_dir / "work" / f"tsn_synthetic_{mode}" / "final.pt", map_location="cpu",
                           weights_only=False)
        reference = torch.load(local_dir / "work" / f"tsn_synthetic_{mode}" / "final.pt", map_location="cpu",
                               weights_only=False)
        assert final["run_info"]["world_size"] == reference["run_info"]["world_size"] == 2
        assert final["run_info"]["total_batch"] == reference["run_info"]["total_batch"]
        for key, value in reference["model"].items():
            assert torch.equal(final["model"][key], value), f"{mode}: {key} differs from the one-node training"
        with np.load(local_dir / "work" / f"tsn_synthetic_{mode}" / "test_scores.npz") as a, \
                np.load(slurm_dir / "work" / f"tsn_synthetic_{mode}" / "test_scores.npz") as b:
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{mode} {key}")
    slurm_results, local_results = read_results(slurm_dir), read_results(local_dir)
    for name in local_results:
        assert slurm_results[name] == local_results[name], name


def epochs_logged(workdir, mode):
    lines = (workdir / "work" / f"tsn_synthetic_{mode}" / "log.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


def resumed_at(workdir, mode):
    """(epoch, steps) the last start of the training resumed from, or None when it started from scratch."""
    log = (workdir / "logs" / "train" / f"tsn_synthetic_{mode}.log").read_text()
    found = re.findall(r"resuming from \S+ \(epoch (\d+) \+ (\d+) steps done\)", log)
    return tuple(map(int, found[-1])) if found else None


@pytest.mark.slow
def test_requeued_training_resumes_from_its_checkpoint(finished, cluster):
    event = finished["events"].get("rgb")
    assert event, "the rgb training was never seen running after its first epoch"
    assert event["released"], "the requeued job never went back to pending"
    assert int(job_field(cluster, event["job"], "Restarts")) >= 1, "the job was not requeued"
    assert job_field(cluster, event["job"], "JobState") == "COMPLETED"
    # every epoch trained (and logged) once: a restart from epoch 0 would log epoch 1 again
    assert epochs_logged(finished["slurm_dir"], "rgb") == list(range(1, 17))
    assert (resumed_at(finished["slurm_dir"], "rgb") or (0, 0)) >= (1, 0), "the requeued job started from scratch"


@pytest.mark.slow
def test_training_survives_a_lost_host(finished, cluster):
    event = finished["events"].get("flow")
    assert event, "the flow training was never seen running after its first epoch"
    job_id, state, hosts = train_job(cluster, "flow")
    assert state == "COMPLETED" and len(hosts) == 2 and event["lost"] not in hosts, (event, job_id, state, hosts)
    assert cluster.node_states()[event["lost"]].startswith("down"), cluster.node_states()
    assert epochs_logged(finished["slurm_dir"], "flow") == list(range(1, 17))
    assert (resumed_at(finished["slurm_dir"], "flow") or (0, 0)) >= (1, 0), "the retry started from scratch"


@pytest.mark.slow
def test_nothing_partial_under_a_final_name(finished):
    import torch

    slurm_dir = finished["slurm_dir"]
    for path in sorted((slurm_dir / "work").rglob("*.pt")):
        if not path.name.startswith("."):  # hidden temporaries of atomic writes may stay after a kill
            torch.load(path, map_location="cpu", weights_only=False)
    for path in sorted((slurm_dir / "results").glob("*.json")):
        json.loads(path.read_text())
