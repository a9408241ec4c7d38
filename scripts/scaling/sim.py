#!/usr/bin/env python3
"""Discrete-event model of Atelier's pipeline under load, with KEDA/HPA scaling.

A job arrives, waits in each stage's queue, is served by one of the stage's
slots (replicas x concurrency: a worker runs `concurrency` jobs at once, its
prefetch), then moves to the next stage. Service times are lognormal, fitted to
each stage's p50 and p95 (what GetStageTimings and GET /api/v1/status/queue
report, measured at the worker's concurrency). Replicas are either fixed or set
by the rules of deploy/k8s/keda.yaml as Kubernetes applies them:

  every HPA sync (15 s): metric = ready + unacked messages of the stage
  desired = ceil(metric / value), unchanged within the HPA's 10 % tolerance
  scale-up: at once, at most max(2 x current, current + 4) per sync
  scale-down: the highest desired of the last `window` seconds, one pod per 60 s
  clamped to [min, max]; a new pod serves after `startup` seconds; a removed
  pod takes no new message and finishes what it holds (its grace covers it)

Arrivals: Poisson at a constant rate, with an optional burst, or a day with a
diurnal profile, or closed-loop clients (each sends its next job when the last
one is answered, as `atelier bench` does).

  sim.py --stages stages.json --rate 0.2 --burst 10:600:600 --autoscale
  sim.py --stages stages.json --closed 8 --requests 64 --overhead 0.05
  sim.py --stages stages.json --per-day 1000000 --peak-ratio 2 --autoscale

stages.json: a list of {"stage", "p50", "p95", "concurrency", "replicas",
"min", "max", "value"} (value defaults to concurrency), or the body of
GET /api/v1/status/queue (its "stages", with --concurrency and --replicas).
Python 3 standard library only. Tested by scripts/scaling/test_sim.py.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from collections import deque
from dataclasses import dataclass, field

Z95 = 1.6448536269514722  # standard normal quantile of 0.95
HPA_SYNC_S = 15.0
HPA_TOLERANCE = 0.1
SCALE_DOWN_POD_PERIOD_S = 60.0


@dataclass
class StageSpec:
    name: str
    p50: float
    p95: float
    concurrency: int
    replicas: int = 1
    min: int = 1
    max: int = 1
    value: float = 0.0

    def __post_init__(self):
        self.value = self.value or float(self.concurrency)
        if not 0 < self.p50 <= self.p95:
            raise ValueError(f"{self.name}: need 0 < p50 <= p95")

    def sampler(self, rng: random.Random):
        mu = math.log(self.p50)
        sigma = math.log(self.p95 / self.p50) / Z95
        return lambda: rng.lognormvariate(mu, sigma)


@dataclass
class Pod:
    ready_at: float
    busy: int = 0
    terminating: bool = False


@dataclass
class StageState:
    spec: StageSpec
    sample: object
    queue: deque = field(default_factory=deque)
    pods: list = field(default_factory=list)
    history: deque = field(default_factory=deque)  # (time, desired) for the scale-down window
    last_scale_down: float = -math.inf
    max_ready: int = 0
    max_pods: int = 0
    pod_seconds: float = 0.0

    def live(self):
        return [p for p in self.pods if not p.terminating]

    def unacked(self):
        return sum(p.busy for p in self.pods)


@dataclass
class Scaling:
    window_s: float = 600.0
    startup_s: float = 20.0


class Sim:
    def __init__(self, stages, rng, autoscale: Scaling | None, overhead: float = 0.0):
        self.stages = [StageState(s, s.sampler(rng)) for s in stages]
        for st in self.stages:
            st.pods = [Pod(ready_at=0.0) for _ in range(st.spec.replicas)]
        self.autoscale = autoscale
        self.overhead = overhead
        self.events: list = []
        self.seq = 0
        self.now = 0.0
        self.latencies: list[float] = []
        self.done_times: list[float] = []
        self.series: list[tuple] = []
        self.on_done = None
        self.stop = None

    def at(self, t, kind, *payload):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    # -- the pipeline ------------------------------------------------------
    def arrive(self, job_start):
        self.enqueue(0, job_start)

    def enqueue(self, i, job_start):
        st = self.stages[i]
        st.queue.append(job_start)
        st.max_ready = max(st.max_ready, len(st.queue))
        self.dispatch(i)

    def dispatch(self, i):
        st = self.stages[i]
        while st.queue:
            free = [p for p in st.pods if not p.terminating and p.ready_at <= self.now
                    and p.busy < st.spec.concurrency]
            if not free:
                return
            pod = min(free, key=lambda p: p.busy)
            pod.busy += 1
            job_start = st.queue.popleft()
            self.at(self.now + st.sample(), "done", i, pod, job_start)

    def finish(self, i, pod, job_start):
        st = self.stages[i]
        pod.busy -= 1
        if pod.terminating and pod.busy == 0:
            st.pods.remove(pod)
        else:
            self.dispatch(i)
        if i + 1 < len(self.stages):
            self.enqueue(i + 1, job_start)
        else:
            self.latencies.append(self.now + self.overhead - job_start)
            self.done_times.append(self.now + self.overhead)
            if self.on_done:
                self.on_done(self.now + self.overhead)

    # -- KEDA + HPA --------------------------------------------------------
    def hpa(self, i):
        st, sc = self.stages[i], self.autoscale
        spec = st.spec
        live = st.live()
        current = len(live)
        metric = len(st.queue) + st.unacked()
        desired = math.ceil(metric / spec.value) if metric else 0
        if current and abs(metric / (current * spec.value) - 1) <= HPA_TOLERANCE:
            desired = current
        desired = min(max(desired, spec.min), spec.max)
        st.history.append((self.now, desired))
        while st.history and st.history[0][0] < self.now - sc.window_s:
            st.history.popleft()
        if desired > current:
            target = min(desired, max(2 * current, current + 4), spec.max)
            for _ in range(target - current):
                st.pods.append(Pod(ready_at=self.now + sc.startup_s))
                self.at(self.now + sc.startup_s, "ready", i)
        else:
            stable = max(d for _, d in st.history)
            if stable < current and self.now - st.last_scale_down >= SCALE_DOWN_POD_PERIOD_S:
                # The ReplicaSet removes the pod ready for the shortest time.
                pod = max(live, key=lambda p: p.ready_at)
                pod.terminating = True
                st.last_scale_down = self.now
                if pod.busy == 0:
                    st.pods.remove(pod)
        st.max_pods = max(st.max_pods, len(st.live()))
        self.at(self.now + HPA_SYNC_S, "hpa", i)

    # -- the run -----------------------------------------------------------
    def run(self, until: float, sample_every: float = 60.0):
        if self.autoscale:
            for i in range(len(self.stages)):
                self.at(HPA_SYNC_S, "hpa", i)
        self.at(0.0, "sample")
        while self.events and not (self.stop and self.stop()):
            t, _, kind, payload = heapq.heappop(self.events)
            if t > until and kind != "done":
                continue
            for st in self.stages:
                st.pod_seconds += len(st.pods) * (t - self.now)
            self.now = t
            if kind == "arrive":
                self.arrive(*payload)
            elif kind == "done":
                self.finish(*payload)
            elif kind == "ready":
                self.dispatch(*payload)
            elif kind == "hpa":
                self.hpa(*payload)
            elif kind == "sample":
                self.series.append((t, [(len(s.queue), s.unacked(), len(s.live())) for s in self.stages]))
                for s in self.stages:
                    s.max_pods = max(s.max_pods, len(s.live()))
                self.at(t + sample_every, "sample")


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def poisson_arrivals(sim, rng, rate_at, peak_rate, until):
    """Non-homogeneous Poisson arrivals by thinning."""
    t = 0.0
    while True:
        t += rng.expovariate(peak_rate)
        if t > until:
            return
        if rng.random() * peak_rate <= rate_at(t):
            sim.at(t, "arrive", t)


def load_stages(path, concurrency=None, replicas=None, max_replicas=None):
    body = json.load(open(path))
    rows = body["stages"] if isinstance(body, dict) else body
    stages = []
    for row in rows:
        conc = int(row.get("concurrency", concurrency or 1))
        reps = int(row.get("replicas", replicas or 1))
        stages.append(StageSpec(
            name=row["stage"], p50=float(row["p50"]), p95=float(row["p95"]),
            concurrency=conc, replicas=reps,
            min=int(row.get("min", reps)), max=int(row.get("max", max_replicas or reps)),
            value=float(row.get("value", 0)),
        ))
    return stages


def summary(sim, span):
    lat = sim.latencies
    out = {
        "jobs": len(lat),
        "throughput_per_s": len(lat) / span if span > 0 else float("nan"),
        "latency_s": {q: round(percentile(lat, p), 3)
                      for q, p in (("p50", .5), ("p95", .95), ("p99", .99), ("max", 1.0))},
        "stages": {},
    }
    for st in sim.stages:
        out["stages"][st.spec.name] = {
            "max_ready": st.max_ready,
            "max_replicas": max(st.max_pods, len(st.live())),
            "mean_replicas": round(st.pod_seconds / sim.now, 2) if sim.now else 0,
        }
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stages", required=True, help="stages JSON (see above)")
    p.add_argument("--concurrency", type=int, help="for status/queue bodies")
    p.add_argument("--replicas", type=int, help="for status/queue bodies")
    p.add_argument("--max-replicas", type=int)
    arrivals = p.add_mutually_exclusive_group(required=True)
    arrivals.add_argument("--rate", type=float, help="jobs per second (Poisson)")
    arrivals.add_argument("--per-day", type=float, help="jobs per day, diurnal profile")
    arrivals.add_argument("--closed", type=int, help="closed-loop clients")
    p.add_argument("--burst", help="FACTOR:START_S:DURATION_S on top of --rate")
    p.add_argument("--peak-ratio", type=float, default=2.0, help="--per-day peak / mean rate")
    p.add_argument("--requests", type=int, default=100, help="--closed: jobs in total")
    p.add_argument("--duration", type=float, default=3600.0, help="seconds of arrivals")
    p.add_argument("--overhead", type=float, default=0.0, help="seconds added per job (HTTP, hops)")
    p.add_argument("--autoscale", action="store_true", help="KEDA/HPA rules instead of fixed replicas")
    p.add_argument("--window", type=float, default=600.0, help="scale-down stabilisation, s")
    p.add_argument("--startup", type=float, default=20.0, help="pod start to ready, s")
    p.add_argument("--set", action="append", default=[], metavar="STAGE.FIELD=N",
                   help="override a stage field, e.g. postprocess.max=16 (repeatable)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--series", help="write a CSV of queue depth, unacked and replicas per minute")
    a = p.parse_args(argv)

    rng = random.Random(a.seed)
    stages = load_stages(a.stages, a.concurrency, a.replicas, a.max_replicas)
    for item in a.set:
        target, value = item.split("=", 1)
        stage, fld = target.split(".", 1)
        spec = next(s for s in stages if s.name == stage)
        setattr(spec, fld, type(getattr(spec, fld))(float(value)) if fld != "name" else value)
    sim = Sim(stages, rng, Scaling(a.window, a.startup) if a.autoscale else None, a.overhead)
    until = a.duration
    if a.closed:
        sent = [0]

        def send(t):
            if sent[0] < a.requests:
                sent[0] += 1
                sim.at(t, "arrive", t)
        for _ in range(a.closed):
            send(0.0)
        sim.on_done = send
        sim.stop = lambda: len(sim.latencies) >= a.requests
        until = math.inf
    elif a.rate is not None:
        factor, start, length = (map(float, a.burst.split(":")) if a.burst else (1.0, 0.0, 0.0))

        def rate_at(t):
            return a.rate * (factor if start <= t < start + length else 1.0)
        poisson_arrivals(sim, rng, rate_at, a.rate * max(factor, 1.0), until)
    else:
        mean = a.per_day / 86400.0
        until = 86400.0 if a.duration == 3600.0 else a.duration

        def rate_at(t):
            # Lowest at 04:00, highest at 16:00; mean = per_day / 86400.
            wave = math.sin(2 * math.pi * (t / 86400.0 - 10 / 24))
            return max(0.0, mean * (1 + (a.peak_ratio - 1) * wave))
        poisson_arrivals(sim, rng, rate_at, mean * a.peak_ratio, until)
    sim.run(until)
    span = (max(sim.done_times) - 0.0) if a.closed and sim.done_times else until
    result = summary(sim, span)
    print(json.dumps(result, indent=2))
    if a.series:
        with open(a.series, "w") as f:
            f.write("t," + ",".join(f"{s.spec.name}_{k}" for s in sim.stages
                                    for k in ("ready", "unacked", "replicas")) + "\n")
            for t, rows in sim.series:
                f.write(f"{t:.0f}," + ",".join(f"{r},{u},{n}" for r, u, n in rows) + "\n")
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
