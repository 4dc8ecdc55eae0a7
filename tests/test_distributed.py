"""Distributed training: two torchrun "nodes" equal one process with the same global batch; two trainings side by
side through the rule's launcher (train/launch.py) never collide; disjoint local GPUs; the launch commands."""
import json
import os
import signal
import subprocess
import sys
import time
from argparse import Namespace

import pytest
import torch

from tests.conftest import BIN, REPO, snakemake_executable
from train import launch
from train.utils import StopRequested

SETTINGS = {"arch": "tsn_r18", "model_options": {"base_channels": 4, "dropout": 0.0}, "num_clips": 2,
            "input_size": 32, "resize_short": 40, "flip": True, "epochs": 2, "data_workers": 0, "lr": 0.05,
            "grad_clip": 40, "deterministic": True, "seed": 5,
            # BatchNorm with batch statistics sees 2 clips per process against 4 in one process: no two runs
            # could agree; with running statistics (mmaction2's norm_eval) every clip is computed alone
            "norm_eval": True}


def environment(**extra):
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO),
            "GLOO_SOCKET_IFNAME": "lo", **extra}


def write_lists(synthetic_small, directory):
    directory.mkdir(exist_ok=True)
    labels = dict(zip(synthetic_small["index"]["video_id"], synthetic_small["index"]["label"]))
    rows = "".join(f"{r['video_id']} {r['n_frames']} {labels[r['video_id']]}\n" for r in synthetic_small["frames"])
    (directory / "train.txt").write_text(rows)
    (directory / "classes.txt").write_text("\n".join(synthetic_small["classes"]) + "\n")
    return directory


def train_args(lists, root, run_dir, batch_size):
    settings = {**SETTINGS, "batch_size": batch_size}
    return ["-m", "train.train", "--settings", json.dumps(settings), "--mode", "rgb",
            "--train-list", str(lists / "train.txt"), "--val-list", str(lists / "train.txt"), "--root", str(root),
            "--classes", str(lists / "classes.txt"), "--run-dir", str(run_dir), "--threads", "1"]


def finish(process, what, timeout=300):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{what} failed ({process.returncode}):\n{out[-2000:]}\n{err[-4000:]}"
    return out, err


def final_weights(run_dir):
    return torch.load(run_dir / "final.pt", weights_only=False)["model"]


@pytest.fixture(scope="module")
def lists(synthetic_small, tmp_path_factory):
    assert len(synthetic_small["frames"]) == 8
    return write_lists(synthetic_small, tmp_path_factory.mktemp("lists"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_nodes_give_the_weights_of_one_process_with_the_same_global_batch(synthetic_small, lists, tmp_path):
    root = synthetic_small["root"] / "rawframes"
    single = subprocess.Popen(
        [str(BIN / "torchrun"), "--standalone", "--nnodes", "1", "--nproc-per-node", "1",
         *train_args(lists, root, tmp_path / "single", batch_size=4)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(OMP_NUM_THREADS="1"), cwd=REPO)
    finish(single, "one process")

    port = launch.free_port("127.0.0.1")
    nodes = []
    for node in range(2):  # two torchrun agents, as srun would start them on two hosts; rendezvous on the first
        command = [str(BIN / "torchrun"), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
                   "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "two-nodes",
                   "--rdzv-conf", f"is_host={int(node == 0)},join_timeout=120", "--max-restarts", "0",
                   *train_args(lists, root, tmp_path / "two_nodes", batch_size=2)]
        nodes.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=environment(OMP_NUM_THREADS="1"), cwd=REPO))
    for node, process in enumerate(nodes):
        out, _ = finish(process, f"node {node}")
    assert "trained tsn_r18 rgb for 2 epochs" in out or (tmp_path / "two_nodes" / "final.pt").is_file()

    expected, actual = final_weights(tmp_path / "single"), final_weights(tmp_path / "two_nodes")
    assert expected.keys() == actual.keys()
    for key in expected:
        # same samples, same global mean gradient: equal up to the order of float additions (all-reduce)
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    initial = {k: v for k, v in torch.load(sorted((tmp_path / "single" / "checkpoints").glob("epoch_*.pt"))[0],
                                           weights_only=False)["model"].items()}
    moved = sum(not torch.equal(initial[k], expected[k]) for k in expected if expected[k].is_floating_point())
    assert moved > 0  # training did change the weights in the second epoch: the comparison is not vacuous
    epochs = [json.loads(line) for line in (tmp_path / "two_nodes" / "log.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_trainings_at_once_through_the_launcher_do_not_collide(synthetic_small, lists, tmp_path):
    root = synthetic_small["root"] / "rawframes"
    runs = []
    for name in ("first", "second"):  # each: 2 workers with a rendezvous of its own (default port 29500 for both
        # would make the second fail with "address already in use" or join the first)
        command = [sys.executable, "-m", "train.launch", "--nnodes", "1", "--nproc-per-node", "2",
                   "--threads", "2", "--", *train_args(lists, root, tmp_path / name, batch_size=2)]
        runs.append(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=environment(OMP_NUM_THREADS="2"), cwd=REPO))
        time.sleep(0.5)
    for name, process in zip(("first", "second"), runs):
        out, err = finish(process, name)
        assert "torchrun --standalone" in err and "(OMP_NUM_THREADS=1)" in err, err[-2000:]
    first, second = final_weights(tmp_path / "first"), final_weights(tmp_path / "second")
    for key in first:  # two independent, identical trainings
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_job_killed_through_the_launcher_continues_where_it_stopped(synthetic_small, lists, tmp_path):
    """SIGTERM to the launcher (what SLURM sends at the time limit or on preemption) reaches the workers through
    torchrun; they checkpoint; the rerun (Snakemake's retry, SLURM's requeue) resumes and ends with the weights of a
    run never interrupted."""
    root = synthetic_small["root"] / "rawframes"
    settings = {**SETTINGS, "epochs": 6}  # 5 epochs left to interrupt: the signal's way through launcher and
    # torchrun must not be outrun by the training on an idle machine

    def command(run_dir):
        args = train_args(lists, root, run_dir, batch_size=1)
        args[args.index("--settings") + 1] = json.dumps({**settings, "batch_size": 1})
        return [sys.executable, "-m", "train.launch", "--nproc-per-node", "1", "--threads", "1", "--", *args]

    straight = subprocess.Popen(command(tmp_path / "straight"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=environment(), cwd=REPO)
    finish(straight, "uninterrupted run")
    killed = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=environment(), cwd=REPO)
    for line in killed.stdout:
        if line.startswith("{"):  # the first epoch is done; stop in one of the next
            killed.send_signal(signal.SIGTERM)
            break
    out, err = killed.communicate(timeout=120)
    assert "stopped by signal" in out + err, (out[-2000:], err[-3000:])
    assert not (tmp_path / "killed" / "final.pt").exists()
    resumed = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=environment(), cwd=REPO)
    out, err = finish(resumed, "resumed run")
    assert "resuming from" in out + err
    expected, actual = final_weights(tmp_path / "straight"), final_weights(tmp_path / "killed")
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key


# ------------------------------------------------------------------ collectives on the training device

@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ddp_training_hands_every_collective_a_tensor_on_its_device(synthetic_small, lists, tmp_path):
    """Two DDP processes train under tests/collective_guard.py, which fails any collective whose tensor is not on
    the device the process trains on (here the CPU; tests/gpu runs the same guard over NCCL)."""
    root = synthetic_small["root"] / "rawframes"
    args = train_args(lists, root, tmp_path / "run", batch_size=2)
    process = subprocess.Popen([str(BIN / "torchrun"), "--standalone", "--nproc-per-node", "2",
                                str(REPO / "tests" / "collective_guard.py"), *args[2:]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment(OMP_NUM_THREADS="1", GUARD_LOG=str(tmp_path / "guard")), cwd=REPO)
    finish(process, "guarded training")
    assert (tmp_path / "run" / "final.pt").is_file()
    for rank in (0, 1):
        log = json.loads((tmp_path / f"guard.rank{rank}.json").read_text())
        assert log["device"] == "cpu"
        reduces = [devices for name, devices in log["calls"] if name == "all_reduce"]
        # the stop flag after each optimizer step (2 epochs × 2 steps) and the epoch metrics: the guard saw them
        assert len(reduces) >= 4 and all(devices == ["cpu"] for devices in reduces), log["calls"]


class CpuStopRequested(StopRequested):
    """StopRequested as it was before issue 12: the flag on a CPU tensor whatever the training device."""

    def requested(self):
        import torch.distributed as dist

        flag = torch.tensor([0 if self.signal is None else 1])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())


def collectives_on_another_device(rank, store, results):
    """One of two gloo processes whose training device is ``lazy`` (a real device that is not the CPU, standing in
    for cuda:N; the guard hands gloo CPU copies, as NCCL would get the GPU tensors)."""
    import signal as signals

    import torch._lazy.ts_backend
    import torch.distributed as dist

    from tests.collective_guard import WrongDevice, install
    from train.utils import Distributed, EpochMeter, reduce_sum

    torch._lazy.ts_backend.init()
    device = torch.device("lazy", 0)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    calls = install(device, via_cpu=True)
    context = Distributed(rank=rank, world_size=2, local_rank=rank, local_world_size=2, device=device)
    outcome = {}
    stop = StopRequested(2, device)
    outcome["quiet"] = stop.requested()
    if rank == 1:
        stop.request(signals.SIGTERM, None)
    outcome["signalled"] = stop.requested()  # one rank's signal stops both
    # one rank's diverged loss stops both at the same step, in the same collective as the stop flag
    outcome["agreed"] = stop.agree(torch.tensor(rank == 0, device=device))
    outcome["sums"] = reduce_sum([1.0, float(rank)], context)
    meter = EpochMeter(device)
    meter.update(torch.tensor(2.0, device=device), torch.tensor(1, device=device), 4, 0.5, 2.0)
    outcome["summary"] = meter.summary(context)
    old = CpuStopRequested(2, device)
    try:
        old.requested()
        outcome["cpu_flag"] = "accepted"
    except WrongDevice as error:
        outcome["cpu_flag"] = str(error)
    outcome["calls"] = calls
    results[rank] = outcome
    dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_collective_guard_catches_the_stop_flag_on_the_cpu_when_training_elsewhere(tmp_path):
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        results = manager.dict()
        mp.start_processes(collectives_on_another_device, args=(tmp_path / "store", results), nprocs=2,
                           start_method="spawn")
        results = dict(results)
    for rank in (0, 1):
        outcome = results[rank]
        assert outcome["quiet"] is False and outcome["signalled"] is True
        assert outcome["agreed"] == (False, True)
        assert outcome["sums"] == [2.0, 1.0]
        assert outcome["summary"]["train_loss"] == 2.0 and outcome["summary"]["data_wait_fraction"] == 0.25
        assert all(devices == ["lazy:0"] for _, devices in outcome["calls"][:-1])
        # the flag of the old StopRequested is caught: on NCCL it would have crashed the first step
        assert outcome["cpu_flag"] == "all_reduce: a tensor on cpu, but this process trains on lazy:0"


# ------------------------------------------------------------------ launcher logic (fast, no training)

def test_single_node_is_standalone_with_per_worker_threads():
    args = Namespace(nnodes=1, nproc_per_node=4, threads=8, gpus=0, gpu_lock_dir="unused", command=["-m", "x"],
                     rdzv_endpoint=None)
    argv, env, pool = launch.plan(args, {"PATH": "/bin", "OMP_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"})
    assert argv == ["torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", "4", "-m", "x"]
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert pool is None


def test_multi_node_is_srun_torchrun_with_c10d_on_the_first_host():
    argv = launch.torchrun_command(2, 4, ["-m", "train.train"], hosts=["gpu17", "gpu18"], endpoint="gpu17:41234",
                                   job_id="991", threads=32, gpus_per_node=4)
    assert argv == ["srun", "--nodes", "2", "--ntasks", "2", "--ntasks-per-node", "1", "--kill-on-bad-exit=1",
                    "--cpus-per-task", "32", "--gres=gpu:4", "torchrun", "--nnodes", "2", "--nproc-per-node", "4",
                    "--rdzv-backend", "c10d", "--rdzv-endpoint", "gpu17:41234", "--rdzv-id", "991",
                    "-m", "train.train"]
    assert launch.rendezvous_endpoint(["elsewhere1", "elsewhere2"], {"SLURM_JOB_ID": "40000"}) == \
        "elsewhere1:29501"
    with pytest.raises(SystemExit, match="SLURM allocation of 2 nodes"):
        launch.torchrun_command(2, 1, ["-m", "x"], hosts=[])


def test_gpu_pool_hands_out_disjoint_devices(tmp_path):
    a, b, c = (launch.GpuPool(tmp_path, ["0", "1", "2", "3"]) for _ in range(3))
    first = a.acquire(2, timeout=0)
    second = b.acquire(2, timeout=0)
    assert sorted(first + second) == ["0", "1", "2", "3"]
    assert c.try_acquire(1) is None
    with pytest.raises(SystemExit, match="no 1 free GPUs"):
        c.acquire(1, timeout=0.1, poll=0.05)
    a.release()
    assert sorted(c.acquire(2, timeout=0)) == sorted(first)
    with pytest.raises(SystemExit, match="wants 5 GPUs"):
        launch.GpuPool(tmp_path, ["0", "1"]).acquire(5)


def test_gpu_locks_go_with_a_killed_job(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from train.launch import GpuPool; "
         f"pool = GpuPool({str(tmp_path)!r}, ['0', '1']); print(pool.acquire(2)); sys.stdout.flush(); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=environment(), cwd=REPO)
    assert holder.stdout.readline().strip() == "['0', '1']"
    assert launch.GpuPool(tmp_path, ["0", "1"]).try_acquire(1) is None
    holder.kill()
    holder.wait()
    assert launch.GpuPool(tmp_path, ["0", "1"]).try_acquire(2) == ["0", "1"]


def test_launcher_takes_gpus_from_the_pool_only_outside_slurm(tmp_path):
    args = Namespace(nnodes=1, nproc_per_node=2, threads=4, gpus=2, gpu_lock_dir=str(tmp_path), command=["-m", "x"],
                     rdzv_endpoint=None)
    _, _, pool = launch.plan(args, {"CUDA_VISIBLE_DEVICES": "4,5,6"})
    assert pool is not None and pool.devices == ["4", "5", "6"]
    _, _, pool = launch.plan(args, {"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_JOB_ID": "7"})
    assert pool is None  # SLURM already narrowed CUDA_VISIBLE_DEVICES to the job's GPUs
    # run() hands the chosen devices to the workers and frees them afterwards
    script = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['OMP_NUM_THREADS'])"
    pool = launch.GpuPool(tmp_path, ["4", "5", "6"])
    blocker = launch.GpuPool(tmp_path, ["4", "5", "6"])
    assert blocker.try_acquire(1) == ["4"]
    env = launch.worker_environment(environment(), 4, 2)
    out = subprocess.run([sys.executable, "-c", "import subprocess, sys; from train.launch import run, GpuPool; "
                          f"sys.exit(run([sys.executable, '-c', {script!r}], {env!r}, "
                          f"GpuPool({str(tmp_path)!r}, ['4', '5', '6']), gpus=2))"],
                         capture_output=True, text=True, env=environment(), cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5,6", "2"]
    assert pool.try_acquire(2) == ["5", "6"]  # released when the job ended


def test_rule_launch_line_and_resources_follow_the_config(tmp_path):
    """The train rule's shell line and SLURM resources for one node and for several (a dry run, nothing runs)."""
    base = [snakemake_executable(), "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
            "-n", "-p", "--cores", "2", "work/tsn_synthetic_rgb/final.pt", "--configfile",
            str(REPO / "tests" / "configs" / "tiny.yaml")]
    one = subprocess.run(base, capture_output=True, text=True, env=environment())
    assert one.returncode == 0, one.stderr[-3000:]
    text = one.stdout + one.stderr
    assert "python -m train.launch --nnodes 1 --nproc-per-node 1 --threads 1 --gpus 0 -- -m train.train" in text
    cluster = tmp_path / "cluster.yaml"
    cluster.write_text("train: {nodes: 2, nproc_per_node: 4, threads: 8, gpu: true}\n")
    many = subprocess.run(base + [str(cluster)], capture_output=True, text=True, env=environment())
    assert many.returncode == 0, many.stderr[-3000:]
    text = many.stdout + many.stderr
    assert "python -m train.launch --nnodes 2 --nproc-per-node 4 --threads 2 --gpus 8 -- -m train.train" in text
    assert "nodes=2" in text and "tasks=2" in text and "mpi=srun" in text and "gres=gpu:4" in text
    assert "tasks_per_gpu=0" in text
