import threading

import pytest

from quanta.threads import each, threads


def test_threads_reads_the_cap_and_ignores_a_bad_one(monkeypatch, capsys):
    monkeypatch.setenv("QUANTA_THREADS", "3")
    assert threads() == 3
    monkeypatch.setenv("QUANTA_THREADS", "lots")
    assert threads() >= 1
    assert "ignored" in capsys.readouterr().err


@pytest.mark.parametrize("cap", [1, 2])
def test_each_calls_every_start_once_on_the_threads_allowed(monkeypatch, cap):
    monkeypatch.setenv("QUANTA_THREADS", str(cap))
    seen, names = [], set()
    barrier = threading.Barrier(cap, timeout=5)

    def fn(start: int) -> None:
        if start // 4 < cap:
            barrier.wait()  # with two threads allowed, the first two starts run at once
        seen.append(start)
        names.add(threading.current_thread().name)

    each(fn, range(0, 40, 4))
    assert sorted(seen) == list(range(0, 40, 4))
    assert len(names) == cap
