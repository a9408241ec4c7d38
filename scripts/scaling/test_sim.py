#!/usr/bin/env python3
"""Checks of scripts/scaling/sim.py against queueing theory and the KEDA rules
it claims to follow. Run by scripts/test.sh: python3 scripts/scaling/test_sim.py
"""

import math
import random
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sim  # noqa: E402


def one_stage(p50, p95, concurrency=1, replicas=1, lo=1, hi=1):
    return [sim.StageSpec("s", p50, p95, concurrency, replicas, lo, hi)]


def run_poisson(stages, rate, until, autoscale=None, seed=7, burst=None):
    rng = random.Random(seed)
    model = sim.Sim(stages, rng, autoscale)
    factor, start, length = burst or (1.0, 0.0, 0.0)

    def rate_at(t):
        return rate * (factor if start <= t < start + length else 1.0)
    sim.poisson_arrivals(model, rng, rate_at, rate * max(factor, 1.0), until)
    arrivals = sum(1 for e in model.events if e[2] == "arrive")
    model.run(until, sample_every=15.0)
    return model, arrivals


class Theory(unittest.TestCase):
    def test_md1_mean_latency_matches_pollaczek_khinchine(self):
        # M/D/1, service 1 s, utilisation 0.5: mean wait 0.5 s, so 1.5 s in the system.
        model, _ = run_poisson(one_stage(1.0, 1.0), rate=0.5, until=200_000)
        mean = sum(model.latencies) / len(model.latencies)
        self.assertAlmostEqual(mean, 1.5, delta=0.05)

    def test_lognormal_fit_reproduces_p50_and_p95(self):
        sample = sim.StageSpec("s", 2.0, 5.0, 1).sampler(random.Random(3))
        draws = [sample() for _ in range(100_000)]
        self.assertAlmostEqual(sim.percentile(draws, 0.5), 2.0, delta=0.05)
        self.assertAlmostEqual(sim.percentile(draws, 0.95), 5.0, delta=0.15)

    def test_closed_loop_throughput_is_capped_by_capacity(self):
        # 2 pods x concurrency 2 of a 1 s stage: 4 jobs/s at most, whatever the clients.
        for clients, expected in ((2, 2.0), (16, 4.0)):
            model = sim.Sim(one_stage(1.0, 1.0, concurrency=2, replicas=2), random.Random(1), None)
            sent = [0]

            def send(t, model=model, sent=sent):
                if sent[0] < 400:
                    sent[0] += 1
                    model.at(t, "arrive", t)
            for _ in range(clients):
                send(0.0)
            model.on_done = send
            model.stop = lambda model=model: len(model.latencies) >= 400
            model.run(math.inf)
            rate = len(model.latencies) / max(model.done_times)
            self.assertAlmostEqual(rate, expected, delta=0.05 * expected)


class Keda(unittest.TestCase):
    SCALING = sim.Scaling(window_s=600.0, startup_s=20.0)

    def burst(self):
        # 2 s jobs, 4 per pod: one pod holds 2 jobs/s. 0.5/s, then 6/s for 10 min.
        stages = one_stage(2.0, 3.0, concurrency=4, replicas=1, lo=1, hi=10)
        return run_poisson(stages, rate=0.5, until=3600, autoscale=self.SCALING,
                           burst=(12.0, 600.0, 600.0))

    def replicas(self, model):
        return [(t, rows[0][2]) for t, rows in model.series]

    def test_scales_up_to_the_load_and_never_past_max(self):
        model, _ = self.burst()
        peak = max(n for _, n in self.replicas(model))
        self.assertGreaterEqual(peak, 4)  # 6 jobs/s x 2 s = 12 in flight = 3 pods, plus backlog
        self.assertLessEqual(peak, 10)

    def test_scale_down_waits_for_the_window(self):
        # 6 jobs/s for 20 min, then nothing: the replicas of the steady load stay
        # a whole window after the load stops, then go.
        stages = one_stage(2.0, 3.0, concurrency=4, replicas=1, lo=1, hi=10)
        model, _ = run_poisson(stages, rate=6.0, until=3600, autoscale=self.SCALING,
                               burst=(0.0, 1200.0, 2400.0))
        series = self.replicas(model)
        at_stop = [n for t, n in series if t <= 1200][-1]
        self.assertGreaterEqual(at_stop, 3)
        for t, n in series:
            if 1200 <= t <= 1200 + self.SCALING.window_s - 30:
                self.assertEqual(n, at_stop, f"scaled at {t}")
        self.assertEqual(series[-1][1], 1, "never scaled back in")

    def test_scaling_in_loses_no_job(self):
        model, arrivals = self.burst()
        self.assertEqual(len(model.latencies), arrivals)


if __name__ == "__main__":
    unittest.main(verbosity=1)
