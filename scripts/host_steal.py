"""CPU time the hypervisor gave to other guests while this VM's cores wanted it ("steal", the eighth number of
/proc/stat's first line), for benchmarks on shared machines. A benchmark that loses a sixth of its core time to the
host reads a sixth slower with our code unchanged; the benches print the share the host took, so a slow round can
be told from a slow program."""

from __future__ import annotations

import os
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class StealClock:
    """Seconds of steal since boot, all cores together; 0 where there is no /proc/stat (not Linux)."""

    def __init__(self):
        try:
            self.fd: int | None = os.open("/proc/stat", os.O_RDONLY)
        except OSError:
            self.fd = None

    def seconds(self) -> float:
        if self.fd is None:
            return 0.0
        try:  # one pread on a descriptor kept open: the GUI bench reads it 100 times a second on the GUI thread
            return int(os.pread(self.fd, 256, 0).split(b"\n", 1)[0].split()[8]) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            return 0.0

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def host_share(steal: float, cpu: float) -> float:
    """The share of the core time a process wanted that the host took: steal / (its CPU + steal)."""
    return steal / (cpu + steal) if cpu + steal > 0 else 0.0


def measured(fn, *args, **kwargs) -> tuple[object, float]:
    """(fn's result, host_share meanwhile). Steal accrues only on cores that want to run, so it is this
    measurement's loss as long as nothing else on the VM is busy (benchmarks run alone)."""
    clock = StealClock()
    try:
        steal, cpu = clock.seconds(), time.process_time()
        result = fn(*args, **kwargs)
        steal, cpu = clock.seconds() - steal, time.process_time() - cpu
    finally:
        clock.close()
    return result, host_share(steal, cpu)
