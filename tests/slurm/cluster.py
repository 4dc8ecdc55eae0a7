"""A throw-away SLURM on this machine (munged + slurmctld + slurmd), for the tests and for trying the profile:
one node (LocalSlurm), or several hosts made of network namespaces on a private bridge (MultiHostSlurm).

    with LocalSlurm(tmp_path) as cluster:       # raises SlurmUnavailable when it cannot run here
        subprocess.run(["sbatch", ...], env=cluster.env)

    python tests/slurm/cluster.py --hosts 3     # by hand: prints how to point sbatch and snakemake at it; Ctrl-C

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

    controller = "localhost"  # slurmctld takes "localhost" as its own name whatever the machine is called
    slurmd_timeout = 60

    def __init__(self, root, cpus=None, memory_mb=64000):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.memory_mb = memory_mb
        self.nodes = ["localhost"]
        self.processes = {}
        self.env = None

    def slurmctld_host(self):
        return self.controller

    def node_lines(self):
        return [f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mb} State=UNKNOWN"]

    # ------------------------------------------------------------------ setup
    def _write_config(self):
        r = self.root
        for sub in ("state", "log", "run", "munge", *(f"spool/{node}" for node in self.nodes)):
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
            f"SlurmctldHost={self.slurmctld_host()}",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool' / '%n'}",  # %n: the node's name, one folder per slurmd
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run' / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd-%n.log'}",
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
            f"SlurmdTimeout={self.slurmd_timeout}",
            "MailProg=/bin/true",
            "SlurmdParameters=config_overrides",  # RealMemory above the machine's: memory is not consumable (CR_CPU)
            *self.node_lines(),
            f"PartitionName=debug Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
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

    def _start(self, name, argv, host=None):
        """Start a daemon; on `host` (MultiHostSlurm) inside that host's namespaces."""
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.processes[name] = subprocess.Popen(self.on_host(host, argv), stdout=log, stderr=subprocess.STDOUT,
                                                env=self.env, start_new_session=True)
        log.close()

    def on_host(self, host, argv):
        return list(argv)

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

    def node_states(self):
        """{node: state} as sinfo says (idle, allocated, down*, …)."""
        result = subprocess.run([_tool("sinfo"), "-h", "-N", "-o", "%N %T"], env=self.env, capture_output=True,
                                text=True)
        return dict(line.split() for line in result.stdout.splitlines() if line.strip())

    def _nodes_up(self):
        states = self.node_states()
        return all(states.get(node, "").rstrip("*") in ("idle", "mixed", "allocated") for node in self.nodes)

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
        self._start("slurmctld", [_tool("slurmctld"), "-D", "-i", "-f", str(self.conf)], host=self.controller)
        ping = lambda: subprocess.run([_tool("scontrol"), "ping"], env=self.env, capture_output=True,
                                      text=True).stdout.count("UP") > 0
        self._wait("slurmctld", ping, 60)
        for node in self.nodes:
            self._start(f"slurmd-{node}", [_tool("slurmd"), "-D", "-N", node, "-f", str(self.conf)], host=node)
        self._wait(f"slurmd to register {', '.join(self.nodes)}", self._nodes_up, 60)
        return self

    def stop(self):
        for name in [*(f"slurmd-{node}" for node in self.nodes), "slurmctld", "munged"]:
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
        """(job id, name, state) of every job slurmctld still remembers (MinJobAge)."""
        result = self.run(_tool("squeue"), "-h", "-t", "all", "-o", "%i|%j|%T")
        return [tuple(line.split("|")) for line in result.stdout.splitlines() if line.strip()]


def missing_multihost_requirements():
    """Why MultiHostSlurm cannot run here, or None (network namespaces are probed when it starts)."""
    missing = [name for name in ("ip", "nsenter", "unshare", "hostname", "mount") if not _tool(name)]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install iproute2 util-linux hostname mount)"
    return missing_requirements()


class MultiHostSlurm(LocalSlurm):
    """Several hosts on one machine: host1, host2, … each a network namespace with its own address on a private
    bridge (10.213.X.0/24, X unused here), its own hostname (a UTS namespace) and /etc/hosts (a bind mount in a
    private mount namespace, so the machine's own file is never touched); one slurmd per host, slurmctld on `ctl`
    (10.213.X.1, the bridge, in this machine's network namespace, where the test's sbatch and squeue reach it), one
    munged whose socket every host shares through the file system, like the working directory.

        with MultiHostSlurm(tmp_path, hosts=3) as cluster:
            cluster.lose("host2")        # a power cut: link down, every process of the host killed

    Nothing leaves the bridge (no route, no NAT). stop() kills every process left in the namespaces, deletes the
    namespaces, the veth pairs and the bridge, even after a failed start.
    """

    controller = "ctl"
    slurmd_timeout = 15  # a lost host is DOWN (and its jobs requeued) within ~15 s, not the default 5 minutes

    def __init__(self, root, hosts=3, cpus=1, memory_mb=64000):
        super().__init__(root, cpus=cpus, memory_mb=memory_mb)
        self.nodes = [f"host{i}" for i in range(1, hosts + 1)]
        self.subnet = None
        self.bridge = None
        self.namespaces = {}  # node -> network namespace name
        self.veths = {}  # node -> the veth end on the bridge

    def address(self, node):
        return f"10.213.{self.subnet}.{1 if node == self.controller else 10 + self.nodes.index(node) + 1}"

    def node_lines(self):
        return [f"NodeName={node} NodeAddr={self.address(node)} CPUs={self.cpus} RealMemory={self.memory_mb} "
                "State=UNKNOWN" for node in self.nodes]

    def slurmctld_host(self):
        return f"{self.controller}({self.address(self.controller)})"

    def on_host(self, host, argv):
        """argv run as on `host`: its network namespace (none for ctl), hostname and /etc/hosts."""
        if host is None:
            return list(argv)
        set_up = 'hostname "$1" && mount --bind "$2" /etc/hosts && shift 2 && exec "$@"'
        inner = [_tool("unshare"), "--uts", "--mount", "--propagation", "private", "sh", "-c", set_up, "sh", host,
                 str(self.root / "hosts"), *argv]
        namespace = self.namespaces.get(host)
        # nsenter, not `ip netns exec`: that remounts /sys, hiding /sys/fs/cgroup, which slurmd needs
        return [_tool("nsenter"), f"--net=/run/netns/{namespace}", *inner] if namespace else inner

    # ------------------------------------------------------------------ network
    def _ip(self, *args, check=True):
        result = subprocess.run([_tool("ip"), *args], capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SlurmUnavailable(f"ip {' '.join(args)}: {result.stderr.strip()}")
        return result

    def _pick_subnet(self):
        used = self._ip("-o", "-4", "addr").stdout
        taken = {int(part.split(".")[2]) for part in used.split() if part.startswith("10.213.")}
        links = self._ip("-o", "link").stdout
        for offset in range(200):
            x = (os.getpid() + offset) % 200 + 20
            if x not in taken and f"afbr{x}:" not in links:
                return x
        raise SlurmUnavailable("no free 10.213.X.0/24 subnet")

    def _create_network(self):
        self.subnet = self._pick_subnet()
        self.bridge = f"afbr{self.subnet}"
        self._ip("link", "add", self.bridge, "type", "bridge")
        self._ip("addr", "add", f"{self.address(self.controller)}/24", "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for i, node in enumerate(self.nodes, 1):
            namespace, veth, peer = f"af{self.subnet}-{node}", f"af{self.subnet}v{i}", f"af{self.subnet}p{i}"
            self._ip("netns", "add", namespace)
            self.namespaces[node] = namespace
            self._ip("link", "add", veth, "type", "veth", "peer", "name", peer)
            self.veths[node] = veth
            self._ip("link", "set", peer, "netns", namespace)
            self._ip("-n", namespace, "link", "set", peer, "name", "eth0")
            self._ip("-n", namespace, "addr", "add", f"{self.address(node)}/24", "dev", "eth0")
            self._ip("-n", namespace, "link", "set", "eth0", "up")
            self._ip("-n", namespace, "link", "set", "lo", "up")
            self._ip("link", "set", veth, "master", self.bridge)
            self._ip("link", "set", veth, "up")
        names = [("127.0.0.1", "localhost"), (self.address(self.controller), self.controller)]
        names += [(self.address(node), node) for node in self.nodes]
        (self.root / "hosts").write_text("".join(f"{address} {name}\n" for address, name in names))

    def _kill_host_processes(self, node, timeout=20):
        """SIGKILL every process in the host's network namespace (slurmd, slurmstepd, the jobs), until none is
        left: they all descend from the slurmd started here."""
        namespace = self.namespaces.get(node)
        deadline = time.monotonic() + timeout
        while namespace and time.monotonic() < deadline:
            pids = [int(pid) for pid in self._ip("netns", "pids", namespace, check=False).stdout.split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)
        process = self.processes.pop(f"slurmd-{node}", None)
        if process is not None:
            process.wait()

    def lose(self, node):
        """The host dies at once: its link goes down first (peers get no FIN or RST, as after a power cut), then
        every process on it is killed. slurmctld marks it DOWN after SlurmdTimeout."""
        self._ip("link", "set", self.veths[node], "down")
        self._kill_host_processes(node)

    def start(self):
        reason = missing_multihost_requirements()
        if reason:
            raise SlurmUnavailable(reason)
        self.root.mkdir(parents=True, exist_ok=True)
        self._create_network()
        return super().start()

    def stop(self):
        try:
            for node in self.nodes:
                self._kill_host_processes(node)
            super().stop()
        finally:
            for veth in self.veths.values():  # both ends at once (a deleted namespace frees its end only later)
                self._ip("link", "del", veth, check=False)
            for namespace in self.namespaces.values():
                self._ip("netns", "del", namespace, check=False)
            self.namespaces.clear()
            self.veths.clear()
            if self.bridge:
                self._ip("link", "del", self.bridge, check=False)
                self.bridge = None


def main(argv=None):
    """Start a test cluster for trying the profile by hand; it runs until Ctrl-C (or SIGTERM), then stops."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(prog="python tests/slurm/cluster.py", description=main.__doc__)
    parser.add_argument("--hosts", type=int, default=3, help="hosts (network namespaces); 0: one node, no "
                                                              "namespaces (LocalSlurm) (default: %(default)s)")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each host offers (default: %(default)s)")
    parser.add_argument("--dir", help="where its configuration, state and logs go (default: a temporary folder, "
                                      "removed at the end)")
    args = parser.parse_args(argv)
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="actionflow-slurm-"))
    cluster = MultiHostSlurm(root, hosts=args.hosts, cpus=args.cpus) if args.hosts else LocalSlurm(root, args.cpus)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        with cluster:
            print(f"SLURM up: nodes {', '.join(cluster.nodes)} ({root}). In another shell:\n"
                  f"  export SLURM_CONF={cluster.conf} PATH={root / 'bin'}:$PATH\n"
                  "  snakemake --profile workflow/profiles/slurm --slurm-no-account --slurm-status-command squeue "
                  "--configfile tests/configs/tiny_slurm.yaml tests/configs/tiny_slurm_nodes2.yaml "
                  "--directory /tmp/try-slurm all\n"
                  "Ctrl-C stops it.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
