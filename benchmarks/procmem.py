"""This process's memory, as the benchmarks report it (Linux's /proc/self/status)."""

import resource


def memory_kb(field):
    """A field of /proc/self/status in kB: VmRSS (resident now), VmHWM (its peak)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_rss_mib():
    """The peak resident memory of this program, in MiB: VmHWM, the high-water mark of its
    own address space. Not getrusage's ru_maxrss: Linux carries that across fork + exec,
    so a benchmark's child would report at least its parent's RSS at the moment it was
    started (a 500 MiB parent: ru_maxrss 527 MiB, VmHWM 14 MiB). ru_maxrss only where
    there is no /proc."""
    try:
        return memory_kb("VmHWM") / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
