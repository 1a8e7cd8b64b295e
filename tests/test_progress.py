"""The progress combinators: successive phases as one bar, and a counter of finished steps."""

import threading

from quanta.progress import Phases, counter


def test_phases_share_one_bar_and_end_at_their_total():
    seen = []
    phases = Phases(lambda d, t: seen.append((d, t)))
    first = phases.next()
    first(1, 4)
    first(4, 4)
    second = phases.next()
    second(0, 2)
    second(2, 2)
    assert seen == [(250, 1000), (1000, 1000), (1000, 2000), (2000, 2000)]
    assert Phases(None).next() is None


def test_counter_counts_every_tick_across_threads():
    seen = []
    tick = counter(lambda d, t: seen.append((d, t)), 400)
    threads = [threading.Thread(target=lambda: [tick() for _ in range(100)]) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [d for d, _ in seen] == list(range(1, 401)) and {t for _, t in seen} == {400}
    counter(None, 3)()  # nothing shown, nothing raised
