"""The thread policy (uniqa.runtime): torch threads = the CPUs Ray reserved (at least 1, rounded down), 1 in a
driver for a small model, a ``threads`` knob overrides; read inside tasks and actors, nothing timed."""

from __future__ import annotations

import os

from uniqa.runtime import THREAD_ENV, policy_threads, torch_threads


def test_policy_outside_ray():
    assert policy_threads() == 1  # a driver, a small model
    assert policy_threads(model_params=10**9) == (os.cpu_count() or 1)  # a large one: every core
    assert policy_threads(3) == 3 and policy_threads(3, cpus=0.5) == 3  # the knob wins
    assert [policy_threads(cpus=c) for c in (0.0, 0.5, 1.0, 1.5, 2.0, 2.7)] == [1, 1, 1, 1, 2, 2]


def test_torch_threads_restores_the_callers_count():
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch_threads() as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads(3) as n:
            assert n == 3 and torch.get_num_threads() == 3
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_tasks_and_actors_run_torch_with_their_reserved_cpus(ray_session):
    ray = ray_session

    def _in_task(threads=None):  # defined here: Ray ships it by value (workers cannot import test modules)
        import torch

        from uniqa.runtime import use_policy_threads

        use_policy_threads(threads)
        return torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"), os.getpid()

    task = ray.remote(_in_task)
    # one after another, so one worker process serves several reservations: each task gets its own count, not
    # the one torch read from OMP_NUM_THREADS when the process first imported it
    seen = [ray.get(task.options(num_cpus=c).remote()) for c in (2, 0.5, 1, 2, 0.5)]
    assert [s[0] for s in seen] == [2, 1, 1, 2, 1]
    assert {s[1] for s in seen} == {os.environ.get("OMP_WAIT_POLICY", THREAD_ENV["OMP_WAIT_POLICY"])}
    assert ray.get(task.options(num_cpus=2).remote(1))[0] == 1  # the knob overrides

    @ray.remote
    class Probe:
        def threads(self):
            return _in_task()[0]

    for cpus, expected in ((0.5, 1), (1, 1), (2, 2)):
        actor = Probe.options(num_cpus=cpus).remote()
        assert ray.get(actor.threads.remote()) == expected, cpus
        ray.kill(actor)
