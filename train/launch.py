"""Start torchrun for one training job: one node or many, GPUs or CPUs, alone or beside other jobs.

    python -m train.launch --nnodes 1 --nproc-per-node 2 --threads 8 --gpus 2 -- -m train.train …

What it decides, so that the Snakemake rule stays one line (workflow/rules/common.smk, torchrun_launch):

* one node: ``torchrun --standalone`` — a private rendezvous on a free port, so several trainings on one machine
  never meet on port 29500;
* several nodes (inside one SLURM allocation): ``srun --nodes N --ntasks N --ntasks-per-node 1 torchrun --nnodes N
  --rdzv-backend c10d --rdzv-endpoint FIRST_HOST:PORT --rdzv-id JOB_ID`` — one torchrun agent per node, the
  rendezvous on the allocation's first host (where the batch script, and so this launcher, runs);
* threads: Snakemake exports OMP_NUM_THREADS (and friends) = the job's threads, which every torchrun worker would
  take; each worker gets ``threads // nproc_per_node`` instead;
* GPUs on a machine without SLURM (``snakemake --resources gpu=N``): Snakemake only counts GPUs, it does not say which.
  The launcher takes the job's share from a pool of lock files (``.snakemake/gpu-locks/gpu<i>.lock``, one per device,
  held with flock for as long as the job runs — a killed job frees them) and sets CUDA_VISIBLE_DEVICES, so jobs
  running side by side get disjoint GPUs. Under SLURM the allocation already sets CUDA_VISIBLE_DEVICES.
* signals: SIGTERM / SIGINT / SIGUSR1 (SLURM preemption or ``scancel --signal``) reach torchrun as SIGTERM, which hands
  them to the workers; train.train then stops at a step boundary, and a rerun resumes from the last checkpoint.

``--print`` shows the command and environment instead of running it.
"""
import errno
import fcntl
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from prep.base import arguments

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                    "NUMEXPR_NUM_THREADS", "GOTO_NUM_THREADS")


def free_port(host=""):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def slurm_hosts(environ=None):
    """The hosts of the current SLURM allocation, in SLURM's order (first = batch host)."""
    environ = os.environ if environ is None else environ
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not nodelist and environ.get("SLURM_JOB_ID"):
        # snakemake-executor-plugin-slurm-jobstep strips SLURM_* but the job id from the command's environment
        result = subprocess.run(["squeue", "-h", "-j", environ["SLURM_JOB_ID"], "-o", "%N"], capture_output=True,
                                text=True)
        nodelist = result.stdout.strip() if result.returncode == 0 else ""
    if not nodelist:
        return []
    result = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True)
    return result.stdout.split()


def rendezvous_endpoint(hosts, environ=None):
    """FIRST_HOST:PORT. A free port when this launcher runs on the first host (the batch host, the usual case);
    otherwise one derived from the job id, so every agent computes the same."""
    environ = os.environ if environ is None else environ
    first = hosts[0]
    here = {socket.gethostname(), socket.gethostname().split(".")[0], environ.get("SLURMD_NODENAME", "")}
    if first in here:
        return f"{first}:{free_port()}"
    return f"{first}:{29500 + 1 + int(environ.get('SLURM_JOB_ID', '0')) % 20000}"


def torchrun_command(nnodes, nproc_per_node, command, hosts=None, endpoint=None, job_id=None, threads=None,
                     gpus_per_node=0):
    """The argv that starts training: torchrun alone on one node, srun + torchrun on several."""
    if nnodes == 1:
        return ["torchrun", "--standalone", "--nnodes", "1", "--nproc-per-node", str(nproc_per_node), *command]
    if not hosts or len(hosts) < nnodes:
        raise SystemExit(f"error: --nnodes {nnodes} needs a SLURM allocation of {nnodes} nodes "
                         f"(found hosts: {hosts or 'none'}); set resources nodes={nnodes} (train.nodes in config)")
    srun = ["srun", "--nodes", str(nnodes), "--ntasks", str(nnodes), "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]
    if threads:
        srun += ["--cpus-per-task", str(threads)]  # SLURM 22.05+: steps no longer inherit the job's cpus-per-task
    if gpus_per_node:
        srun += [f"--gres=gpu:{gpus_per_node}"]
    return [*srun, "torchrun", "--nnodes", str(nnodes), "--nproc-per-node", str(nproc_per_node),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", str(job_id or "actionflow"),
            *command]


def worker_environment(environ, threads, nproc_per_node, visible_gpus=None):
    """The environment for torchrun: per-worker thread counts, and the GPUs this job owns when given."""
    env = dict(environ)
    if threads:
        per_process = str(max(1, threads // nproc_per_node))
        for name in THREAD_VARIABLES:
            env[name] = per_process
    if visible_gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, visible_gpus))
    return env


class GpuPool:
    """Disjoint GPUs for jobs on one machine: one lock file per device, flock'ed while a job holds it.

    ``devices`` is the machine's GPU ids (default: CUDA_VISIBLE_DEVICES, else 0..count-1). ``acquire(n)`` waits
    (polling) until n of them are free, locks them and returns their ids; the locks go with the process.
    """

    def __init__(self, lock_dir, devices):
        self.lock_dir = Path(lock_dir)
        self.devices = [str(d) for d in devices]
        self.handles = []

    def try_acquire(self, count):
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        taken = []
        for device in self.devices:
            if len(taken) == count:
                break
            handle = open(self.lock_dir / f"gpu{device}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                handle.close()
                if error.errno in (errno.EAGAIN, errno.EACCES):
                    continue
                raise
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            taken.append((device, handle))
        if len(taken) < count:
            for _, handle in taken:
                handle.close()  # closing the file releases its flock
            return None
        self.handles = [handle for _, handle in taken]
        return [device for device, _ in taken]

    def acquire(self, count, timeout=None, poll=2.0):
        if count > len(self.devices):
            raise SystemExit(f"error: the job wants {count} GPUs; this machine has {len(self.devices)} "
                             f"({','.join(self.devices) or 'none'})")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            devices = self.try_acquire(count)
            if devices is not None:
                return devices
            if deadline is not None and time.monotonic() > deadline:
                raise SystemExit(f"error: no {count} free GPUs in {self.lock_dir} after {timeout} s")
            time.sleep(poll)

    def release(self):
        for handle in self.handles:
            handle.close()
        self.handles = []


def machine_gpus(environ):
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every device nvidia-smi lists."""
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        result = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in result.stdout.splitlines() if line.strip()] if result.returncode == 0 else []


def plan(args, environ=None):
    """(argv, env, gpu pool or None): everything the launch does, without doing it."""
    environ = dict(os.environ if environ is None else environ)
    in_slurm = "SLURM_JOB_ID" in environ
    hosts = endpoint = None
    if args.nnodes > 1:
        hosts = slurm_hosts(environ)
        if hosts:
            endpoint = args.rdzv_endpoint or rendezvous_endpoint(hosts, environ)
    pool = None
    if args.gpus and not in_slurm:
        pool = GpuPool(args.gpu_lock_dir, machine_gpus(environ))
    argv = torchrun_command(args.nnodes, args.nproc_per_node, args.command, hosts=hosts, endpoint=endpoint,
                            job_id=environ.get("SLURM_JOB_ID"), threads=args.threads,
                            gpus_per_node=args.gpus // args.nnodes if args.nnodes > 1 else 0)
    # a job given no GPUs sees none (CUDA_VISIBLE_DEVICES=""): `train.gpu: false` must not land on a GPU that
    # another job holds; under SLURM the allocation's CUDA_VISIBLE_DEVICES stands for GPU jobs
    visible = [] if not args.gpus else None
    return argv, worker_environment(environ, args.threads, args.nproc_per_node, visible), pool


def run(argv, env, pool=None, gpus=0, timeout=None):
    """Run torchrun holding the job's GPUs; forward termination signals as SIGTERM; return its exit code."""
    if pool is not None:
        devices = pool.acquire(gpus, timeout=timeout)
        env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(devices)}
        print(f"launch: GPUs {','.join(devices)} (lock files in {pool.lock_dir})", file=sys.stderr, flush=True)
    print("launch:", shlex.join(argv), f"(OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', '')})", file=sys.stderr,
          flush=True)
    child = subprocess.Popen(argv, env=env)

    def forward(signum, frame):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, forward)
    try:
        while True:
            try:
                return child.wait()
            except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
                continue
    finally:
        if pool is not None:
            pool.release()


def build_parser():
    parser = arguments.Parser(prog="python -m train.launch", description=__doc__.split("\n\n")[0],
                                     usage="%(prog)s [options] -- TORCHRUN_SCRIPT_ARGS (e.g. -m train.train …)")
    parser.add_argument("--nnodes", type=arguments.count(1), default=1,
                        help="nodes (>1: srun inside a SLURM allocation)")
    parser.add_argument("--nproc-per-node", type=arguments.count(1), default=1,
                        help="torchrun workers per node (GPUs per node)")
    parser.add_argument("--threads", type=arguments.count(1),
                        help="CPU threads of the job on each node (split between workers)")
    parser.add_argument("--gpus", type=arguments.count(0), default=0, help="GPUs of the job in total (0: CPU)")
    parser.add_argument("--gpu-lock-dir", default=".snakemake/gpu-locks",
                        help="lock files that hand out disjoint GPUs without SLURM (default: %(default)s)")
    parser.add_argument("--gpu-wait", type=arguments.number(minimum=0), default=None,
                        help="seconds to wait for free GPUs (default: ever)")
    parser.add_argument("--rdzv-endpoint", help="HOST:PORT for --nnodes > 1 (default: first host, free port)")
    parser.add_argument("--print", action="store_true", help="print the command and thread settings, run nothing")
    return parser


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        build_parser().parse_args(argv)  # --help / -h: print the help and exit
        build_parser().error("separate the training command with --, e.g. -- -m train.train …")
    split = argv.index("--")
    args = build_parser().parse_args(argv[:split])
    args.command = argv[split + 1:]
    if not args.command:
        build_parser().error("no training command after --")
    if args.nnodes < 1 or args.nproc_per_node < 1:
        build_parser().error("--nnodes and --nproc-per-node must be at least 1")
    command, env, pool = plan(args)
    if args.print:
        print(shlex.join(command))
        print(f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS', '')}")
        return 0
    return run(command, env, pool, gpus=args.gpus, timeout=args.gpu_wait)


if __name__ == "__main__":
    sys.exit(main())
