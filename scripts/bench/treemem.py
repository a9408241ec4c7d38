"""Runs a command and reports its wall time and the peak memory of its whole
process tree (the sum of the resident sets of the command and every descendant,
sampled every 5 ms; the tree is re-read every 50 ms), so a helper process's memory counts too.

Usage: treemem.py COMMAND [ARG ...]   →   prints `wall_s=… peak_mb=…`
"""
import os
import subprocess
import sys
import time

PAGE = os.sysconf("SC_PAGE_SIZE")
INTERVAL = 0.005
SCAN = 0.05


def descendants(root):
    """Every process below `root`, from one scan of /proc (parent links)."""
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def rss(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def main():
    start = time.perf_counter()
    proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak, tree, scanned = 0, set(), 0.0
    while proc.poll() is None:
        # Rescanning /proc is the expensive part: only every SCAN seconds.
        if time.perf_counter() - scanned > SCAN:
            tree, scanned = descendants(proc.pid), time.perf_counter()
        peak = max(peak, rss(proc.pid) + sum(rss(pid) for pid in tree))
        time.sleep(INTERVAL)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed with status {proc.returncode}")
    print(f"wall_s={wall:.3f} peak_mb={peak / 1e6:.0f}")


if __name__ == "__main__":
    main()
