"""The stop request that SIGTERM and Ctrl-C make, on the process itself: the first asks,
a second Ctrl-C insists, and the handlers before it come back when training ends."""

from __future__ import annotations

import os
import signal

import pytest

from clipforge.train.signals import StopOnSignals


def test_the_first_signal_is_a_request_and_a_second_ctrl_c_interrupts():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopOnSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.received == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler repeating itself: still a request
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_ctrl_c_alone_is_a_request():
    with StopOnSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGINT


def test_under_torchrun_a_second_ctrl_c_is_the_agent_passing_the_first_on():
    with StopOnSignals(repeat_interrupts=False) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGINT
