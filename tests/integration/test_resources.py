"""Resource defaults come from what the process may use (its CPU affinity and cgroup quota),
not from the host's count."""
import os

from rmtest.server import RunningServer


def config_event(srv):
    ev = srv.events("config")
    assert len(ev) == 1
    return ev[0]


def test_threads_follow_the_cpu_affinity():
    # Pinned to one CPU: one polling thread and two workers, whatever the host has.
    with RunningServer(prefix=["taskset", "-c", "0"]) as srv:
        cfg = config_event(srv)
        assert (cfg["threads"], cfg["workers"]) == (1, 2)


def test_threads_default_to_half_the_allowed_cpus():
    allowed = len(os.sched_getaffinity(0))
    threads = (allowed + 1) // 2  # one polling thread per two CPUs, rounded up
    with RunningServer() as srv:
        cfg = config_event(srv)
        assert (cfg["threads"], cfg["workers"]) == (threads, 2 * threads)
    if allowed >= 2:  # two CPUs of the affinity mask: one polling thread, two workers
        with RunningServer(prefix=["taskset", "-c", "0,1"]) as srv:
            assert (config_event(srv)["threads"], config_event(srv)["workers"]) == (1, 2)


def test_explicit_threads_win_over_the_affinity():
    with RunningServer(["--threads", "3", "--workers", "5"], prefix=["taskset", "-c", "0"]) as srv:
        cfg = config_event(srv)
        assert (cfg["threads"], cfg["workers"]) == (3, 5)
