"""Times whole commands, interleaved run by run, and prints medians and ratios.

Usage: interleave.py [--runs N] [--baseline NAME] NAME=COMMAND [NAME=COMMAND ...]
Each round runs every command once, in a rotating order, so load from other work
on the machine spreads evenly. One warm-up round is not counted.
"""
import argparse
import shlex
import statistics
import subprocess
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--baseline", default=None)
    parser.add_argument("commands", nargs="+")
    args = parser.parse_args()

    commands = []
    for spec in args.commands:
        name, _, command = spec.partition("=")
        commands.append((name, shlex.split(command)))
    times = {name: [] for name, _ in commands}

    for round_ in range(args.runs + 1):
        shift = round_ % len(commands)
        for name, argv in commands[shift:] + commands[:shift]:
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elapsed = time.perf_counter() - start
            if round_ > 0:
                times[name].append(elapsed)

    medians = {name: statistics.median(t) for name, t in times.items()}
    baseline = args.baseline or commands[0][0]
    print(f"{'command':<10} {'median s':>9} {'min s':>7} {'max s':>7} {'vs ' + baseline:>9}")
    for name, _ in commands:
        t = times[name]
        ratio = medians[name] / medians[baseline]
        print(f"{name:<10} {medians[name]:>9.3f} {min(t):>7.3f} {max(t):>7.3f} {ratio:>8.2f}x")
    print(f"({args.runs} interleaved runs each)")


if __name__ == "__main__":
    main()
