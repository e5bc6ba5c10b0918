"""The stop request that SIGTERM and Ctrl-C make, on the process itself: the first asks,
a second Ctrl-C insists, and the handlers before it come back when training ends."""

from __future__ import annotations

import signal
import threading

import pytest

from clipforge.train.signals import StopOnSignals


def _signal_main_thread(signum: int) -> None:
    """Deliver ``signum`` to the main thread itself. A signal sent to the process may land on any
    of its threads (torch's and Arrow's pools are threads too), and Python then runs the handler
    a few instructions later, racing the assertion that follows."""
    signal.pthread_kill(threading.main_thread().ident, signum)


@pytest.fixture
def python_ctrl_c():
    """Python's own SIGINT handler, whatever earlier tests in this process left installed: a
    second Ctrl-C must do what that handler does."""
    earlier = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, earlier)


def test_the_first_signal_is_a_request_and_a_second_ctrl_c_interrupts(python_ctrl_c):
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopOnSignals() as stop:
        _signal_main_thread(signal.SIGTERM)
        assert stop.received == signal.SIGTERM
        _signal_main_thread(signal.SIGTERM)  # a scheduler repeating itself: still a request
        with pytest.raises(KeyboardInterrupt):
            _signal_main_thread(signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_ctrl_c_alone_is_a_request():
    with StopOnSignals() as stop:
        _signal_main_thread(signal.SIGINT)
        assert stop.received == signal.SIGINT


def test_under_torchrun_a_second_ctrl_c_is_the_agent_passing_the_first_on():
    with StopOnSignals(repeat_interrupts=False) as stop:
        _signal_main_thread(signal.SIGINT)
        _signal_main_thread(signal.SIGINT)
        assert stop.received == signal.SIGINT
