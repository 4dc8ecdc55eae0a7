"""A throw-away single-node SLURM on this machine (munged + slurmctld + slurmd), for the tests.

    with LocalSlurm(tmp_path) as cluster:       # raises SlurmUnavailable when it cannot run here
        subprocess.run(["sbatch", ...], env=cluster.env)

Everything lives under one directory: slurm.conf, a private munge key and socket, state, spool, logs, pid files.
Ports are picked free, so it never meets a real SLURM (or another test's) on this host. Needs root and the Debian
packages slurm-wlm and munge (.ci/run installs them). Only the daemons started here are stopped, by their pids.
"""
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


CLIENTS = ("srun", "sbatch", "squeue", "scontrol", "sinfo", "scancel", "sacct", "salloc", "sstat", "sacctmgr",
           "sshare")


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be started here (not root, packages missing, daemons do not come up); the reason is the text."""


def _tool(name):
    for folder in ("/usr/sbin", "/usr/bin", "/sbin"):
        path = Path(folder) / name
        if path.exists():
            return str(path)
    return shutil.which(name)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def missing_requirements():
    """Why SLURM cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root to start munged, slurmctld and slurmd"
    tools = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol")
    missing = [name for name in tools if not _tool(name)]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install slurm-wlm munge)"
    return None


class LocalSlurm:
    """One node called `localhost` with this machine's CPUs, partition `debug`, squeue status (MinJobAge 600)."""

    def __init__(self, root, cpus=None, memory_mb=64000):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.processes = {}
        self.env = None

    # ------------------------------------------------------------------ setup
    def _write_config(self):
        r = self.root
        for sub in ("state", "spool", "log", "run", "munge"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        (r / "socket").mkdir(exist_ok=True)
        os.chmod(r / "socket", 0o755)  # clients (any user) must reach the socket; the key stays private
        self.munge_socket = r / "socket" / "munge.socket"
        ctld_port, d_port = _free_ports(2)
        lines = [
            "ClusterName=actionflowtest",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=600",  # finished jobs stay in squeue for the plugin's status queries (no accounting here)
            "KillWait=5",
            "InactiveLimit=0",
            "SlurmdTimeout=60",
            "MailProg=/bin/true",
            "SlurmdParameters=config_overrides",  # RealMemory above the machine's: memory is not consumable (CR_CPU)
            f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN",
            "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
        ]
        self.conf = r / "slurm.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def _write_client_wrappers(self):
        """bin/srun etc.: the client commands with SLURM_CONF set. The slurm-jobstep plugin drops every SLURM_*
        variable but the job's id before its `srun` (on a real cluster the clients find /etc/slurm/slurm.conf or
        ask slurmctld, configless); this cluster's slurm.conf lives in a temporary directory, so the wrappers (on
        PATH, which sbatch --export=ALL hands to the jobs) point the clients at it."""
        folder = self.root / "bin"
        folder.mkdir(exist_ok=True)
        for name in CLIENTS:
            real = _tool(name)
            if real is None:
                continue
            wrapper = folder / name
            wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{real}" "$@"\n')
            wrapper.chmod(0o755)

    def _start(self, name, argv):
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.processes[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)
        log.close()

    def _wait(self, what, check, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise SlurmUnavailable(f"{name} exited ({process.returncode}) while waiting for {what}:\n"
                                           f"{self.logs()}")
            if check():
                return
            time.sleep(0.5)
        raise SlurmUnavailable(f"timed out waiting for {what}:\n{self.logs()}")

    def logs(self):
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace")[-3000:]
            parts.append(f"--- {path.name}\n{text}")
        return "\n".join(parts)

    def _node_idle(self):
        result = subprocess.run([_tool("sinfo"), "-h", "-N", "-o", "%T"], env=self.env, capture_output=True,
                                text=True)
        return result.returncode == 0 and result.stdout.strip().rstrip("*") in ("idle", "mixed", "allocated")

    def start(self):
        reason = missing_requirements()
        if reason:
            raise SlurmUnavailable(reason)
        self._write_config()
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self._write_client_wrappers()
        self.env["PATH"] = f"{self.root / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"
        for key in list(self.env):  # an outer allocation's variables would confuse sbatch/srun
            if key.startswith(("SLURM_", "SBATCH_", "SRUN_")) and key != "SLURM_CONF":
                del self.env[key]
        self._start("munged", [_tool("munged"), "--foreground", "--force",
                               f"--key-file={self.root / 'munge' / 'munge.key'}",
                               f"--socket={self.munge_socket}",
                               f"--pid-file={self.root / 'run' / 'munged.pid'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}",
                               f"--seed-file={self.root / 'munge' / 'munge.seed'}"])
        self._wait("munged", self.munge_socket.exists, 20)
        self._start("slurmctld", [_tool("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        ping = lambda: subprocess.run([_tool("scontrol"), "ping"], env=self.env, capture_output=True,
                                      text=True).stdout.count("UP") > 0
        self._wait("slurmctld", ping, 60)
        self._start("slurmd", [_tool("slurmd"), "-D", "-N", "localhost", "-f", str(self.conf)])
        self._wait("slurmd to register node localhost", self._node_idle, 60)
        return self

    def stop(self):
        for name in ("slurmd", "slurmctld", "munged"):
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        return False

    # ------------------------------------------------------------------ helpers for tests
    def run(self, *argv, **kwargs):
        return subprocess.run(list(argv), env=kwargs.pop("env", self.env), capture_output=True, text=True, **kwargs)

    def jobs(self):
        """(job id, name, state, exit code) of every job slurmctld still remembers (MinJobAge)."""
        result = self.run(_tool("squeue"), "-h", "-t", "all", "-o", "%i|%j|%T")
        return [tuple(line.split("|")) for line in result.stdout.splitlines() if line.strip()]
