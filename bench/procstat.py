"""CPU seconds per process subtree, from /proc: who used the two cores during a phase."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))


def proc_stats() -> Iterator[tuple[int, list[str]]]:
    """(pid, the fields of /proc/<pid>/stat after the command name) for every process we may read."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name is in parentheses and may contain spaces: split after it.
        yield int(entry.name), raw[raw.rindex(")") + 2 :].split()


def listens_on(pid: int, port: int) -> bool:
    """Whether `pid` itself holds a listening TCP socket on `port`.

    Processes sharing a port with SO_REUSEPORT all answer on it, so an HTTP
    probe cannot tell which one is up; the socket table can.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 is the inode.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _read_all() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, utime + stime in seconds) for every process we may read."""
    return {pid: (int(f[1]), (int(f[11]) + int(f[12])) / TICK) for pid, f in proc_stats()}


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, state) for every process in /proc."""
    return {pid: (int(f[1]), f[0]) for pid, f in proc_stats()}


def descendants(root: int) -> set[int]:
    """Every live process below `root`."""
    table = process_table()
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pids: Iterable[int]) -> set[int]:
    """Those of `pids` still running (a zombie counts as gone)."""
    table = process_table()
    return {pid for pid in pids if pid in table and table[pid][1] not in ("Z", "X")}


def cpu_seconds(roots: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each named process and its living descendants."""
    table = _read_all()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in table.items():
        children[ppid].append(pid)
    totals: dict[str, float] = {}
    for name, root in roots.items():
        total = 0.0
        stack = [root]
        while stack:
            pid = stack.pop()
            if pid in table:
                total += table[pid][1]
                stack.extend(children[pid])
        totals[name] = total
    return totals


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


MACHINE = "machine"
BENCH = "bench"
# Time the hypervisor gave our virtual CPUs to another guest: on a shared host a
# run with much of it was slower for reasons outside the machine.
STOLEN = "stolen"


def _cpu_fields() -> list[int]:
    """user nice system idle iowait irq softirq steal, all cores, from /proc/stat."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def machine_busy_seconds() -> float:
    """CPU seconds the machine's processes and kernel spent busy (all cores; not stolen time)."""
    fields = _cpu_fields()
    return (sum(fields[:3]) + fields[5] + fields[6]) / TICK  # user nice system, irq softirq


def stolen_seconds() -> float:
    """CPU seconds our virtual CPUs were runnable but the hypervisor ran someone else."""
    return _cpu_fields()[7] / TICK


def shares(cpu: Mapping[str, float], seconds: float) -> list[str]:
    """Each named subtree's share of one core, then what other processes used and what was stolen."""
    named = {k: v for k, v in cpu.items() if k not in (MACHINE, STOLEN)}
    parts = [f"{name} {used / seconds:.0%}" for name, used in named.items()]
    if MACHINE in cpu:
        parts.append(f"not ours {max(0.0, cpu[MACHINE] - sum(named.values())) / seconds:.0%}")
    if STOLEN in cpu:
        parts.append(f"stolen by the hypervisor {cpu[STOLEN] / seconds:.0%}")
    return parts


def own_seconds() -> float:
    """This process alone (not its children)."""
    times = os.times()
    return times.user + times.system


class CpuMeter:
    """CPU seconds per named subtree between `start()` and `stop()`.

    The result also holds `machine` (every core, every process), `stolen` (by the
    hypervisor) and `bench` (this process), so a caller can tell how much went to
    processes that are not ours, and how much the host took away.
    """

    def __init__(self, roots: Mapping[str, int]) -> None:
        self.roots = dict(roots)
        self._before: dict[str, float] = {}

    def _sample(self) -> dict[str, float]:
        sample = cpu_seconds(self.roots)
        sample[MACHINE] = machine_busy_seconds()
        sample[STOLEN] = stolen_seconds()
        sample[BENCH] = own_seconds()
        return sample

    def start(self) -> None:
        self._before = self._sample()

    def stop(self) -> dict[str, float]:
        after = self._sample()
        return {name: after[name] - self._before.get(name, 0.0) for name in after}
