"""The JPEG encoder's thread pool (``quanta.image.jpeg._parallel``)."""

from __future__ import annotations

import threading

from quanta.image.jpeg import _parallel


def test_results_come_back_in_order_from_one_pool_kept_for_the_process():
    names = _parallel.run_all([lambda k=k: (k, threading.current_thread().name) for k in range(6)], 2)
    assert [k for k, _ in names] == list(range(6))
    assert all(n.startswith("quanta-jpeg") for _, n in names)
    pool = _parallel._shared_pool(2)
    _parallel.run_all([lambda: 1, lambda: 2], 2)
    assert _parallel._shared_pool(2) is pool


def test_a_step_a_worker_asks_for_runs_in_that_worker():
    def outer(k):
        # each outer step asks for two more: with both workers busy, a pool that queued them
        # behind the outer steps would wait forever
        return _parallel.run_all([lambda: (k, threading.current_thread().name)] * 2, 2)

    done = []
    steps = [lambda k=k: outer(k) for k in range(4)]
    t = threading.Thread(target=lambda: done.append(_parallel.run_all(steps, 2)))
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "nested steps waited for the pool they run on"
    for k, inner in enumerate(done[0]):
        assert [i for i, _ in inner] == [k, k] and inner[0][1] == inner[1][1]  # one worker, in turn


def test_one_thread_or_one_step_runs_here():
    here = threading.current_thread().name
    assert _parallel.run_all([lambda: threading.current_thread().name] * 3, 1) == [here] * 3
    assert _parallel.run_all([lambda: threading.current_thread().name], 2) == [here]


def test_a_scan_counted_in_parts_counts_as_one_pass(monkeypatch):
    import numpy as np

    from quanta.image.jpeg import entropy
    from quanta.image.jpeg._dispatch import kernels

    rng = np.random.default_rng(5)
    n = 6 * 997  # whole 4:2:0 MCUs of six blocks
    coefs = np.where(rng.random((n, 64)) < 0.2, rng.integers(-60, 61, (n, 64)), 0).astype(np.int16)
    coefs[:, 0] = rng.integers(-300, 300, n)  # DC differences cross the cuts
    comp = np.tile(np.array([0, 0, 0, 0, 1, 2], np.int8), n // 6)
    tables = np.array([0, 1, 1], np.int64)
    whole = kernels.count_symbols(coefs, comp, tables, tables, 6, 0)
    for parts in (2, 3, 7):
        monkeypatch.setattr(_parallel, "threads_for", lambda blocks, parts=parts: parts)
        dc, ac, extra = entropy.count(coefs, comp, tables, 6)
        assert np.array_equal(dc, whole[0]) and np.array_equal(ac, whole[1]) and extra == whole[2]
    with_restarts = kernels.count_symbols(coefs, comp, tables, tables, 6, 5)
    dc, ac, extra = entropy.count(coefs, comp, tables, 6, 5)  # restart markers: one pass
    assert np.array_equal(dc, with_restarts[0]) and extra == with_restarts[2]


def test_a_components_lists_and_scans_counted_in_pieces_are_the_whole_ones(monkeypatch):
    """The progressive plan's pieces on the threads: nonzero lists built in halves and joined,
    and a depth group's scans counted in pieces (first scans by point transform, each refining
    scan alone), give exactly what one call gives."""
    import numpy as np

    from quanta.image.jpeg import _scans, progressive

    rng = np.random.default_rng(11)
    coefs = np.where(rng.random((3001, 64)) < 0.15, rng.integers(-40, 41, (3001, 64)), 0).astype(np.int16)
    idx = np.ascontiguousarray(rng.permutation(3001)[:2500], dtype=np.intp)
    monkeypatch.setattr(_parallel, "PARALLEL_BLOCKS", 1)
    monkeypatch.setenv("QUANTA_THREADS", "2")
    halves = progressive._halves(idx, 2)
    assert [h.size for h in halves] == [1250, 1250]
    whole = _scans.nonzeros(coefs, idx)
    joined = progressive._joined([_scans.nonzeros(coefs, h) for h in halves])
    assert all(np.array_equal(a[:int(whole[0][-1])], b[:int(whole[0][-1])]) for a, b in zip(whole, joined))
    assert np.array_equal(whole[0], joined[0])
    scans = sorted({s for lay in progressive.LAYOUTS for s in lay})
    search = progressive._Search(progressive.LAYOUTS, whole)
    one = search.count(0, scans)
    pieces = progressive._merged([(0, *search.count(0, p)) for p in progressive._pieces(scans)])
    order = [pieces[0][1].index(s) for s in scans]
    assert np.array_equal(one[1], pieces[0][2][order]) and np.array_equal(one[2], pieces[0][3][order])
