"""`stop_dbt_on_sigterm`: SIGTERM reaches dbt's main thread as Ctrl-C even where the first one is lost."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from dbt2prefect import dbt_run

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)


@pytest.fixture
def passed_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """SIGTERMs that reach the handler `stop_dbt_on_sigterm` replaced; repeats come every 50 ms."""
    monkeypatch.setattr(dbt_run, "SIGTERM_REPEAT_SECONDS", 0.05)
    received: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _sigterm_soon() -> None:
    threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()


def test_a_lost_interrupt_comes_again_into_a_blocking_wait_of_the_main_thread(passed_on: list[int]) -> None:
    # dbt's main thread waits for its pool in a queue join that only ends with the build: the repeat must end it.
    build_done = threading.Event()
    build = threading.Timer(20, build_done.set)
    build.start()
    lost = woke_during_the_build = False
    try:
        with pytest.raises(KeyboardInterrupt), dbt_run.stop_dbt_on_sigterm() as state:
            try:
                _sigterm_soon()
                threading.Event().wait(5)
            except KeyboardInterrupt:
                lost = True  # a callback that catches Ctrl-C
            try:
                build_done.wait()
            except KeyboardInterrupt:
                woke_during_the_build = not build_done.is_set()
                raise
    finally:
        build.cancel()
    assert lost and state.received
    assert woke_during_the_build, "the repeat came only once the build had ended"
    assert passed_on == [signal.SIGTERM], "the signal goes on once to the handler it replaced"


def test_repeats_do_not_cut_short_dbts_own_handling_of_the_first_interrupt(passed_on: list[int]) -> None:
    cleaned_up = False
    with pytest.raises(KeyboardInterrupt), dbt_run.stop_dbt_on_sigterm():
        try:
            _sigterm_soon()
            threading.Event().wait(5)
        except KeyboardInterrupt:
            # dbt writes run_results.json and cancels its queries here; several repeats come meanwhile.
            threading.Event().wait(0.5)
            cleaned_up = True
            raise
    assert cleaned_up
    assert passed_on == [signal.SIGTERM]
