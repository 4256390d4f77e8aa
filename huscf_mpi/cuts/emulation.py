"""Device emulation: make a client as slow as the profile it plays (SPEC §5, issue 3).

A paced compute section of F FLOPs takes at least ``F / flops_per_s`` seconds of wall time and
a message of n bytes at least ``n / link_bytes_per_s``: the pacer sleeps the difference. When
the real hardware is slower than the profile (the section already took longer than its
target) nothing can be done; the pacer counts those sections and the seconds by which they
overran, so a result file says where the emulation did not hold.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Pacer:
    """Paces compute and transfers of one emulated client.

    Attributes
    ----------
    flops_per_s, link_bytes_per_s : the emulated profile (FLOP/s, bytes/s).
    overrun_seconds : total seconds by which real compute exceeded the profile's target.
    overrun_sections : number of compute sections that overran.
    slept_seconds : total seconds slept to slow compute and transfers down.
    """

    flops_per_s: float
    link_bytes_per_s: float
    overrun_seconds: float = 0.0
    overrun_sections: int = 0
    slept_seconds: float = 0.0

    @contextmanager
    def compute(self, flops: float):
        """Context: the enclosed work takes at least ``flops / flops_per_s`` seconds."""
        t0 = time.perf_counter()
        yield
        self._hold(t0, flops / self.flops_per_s)

    def transfer(self, nbytes: int) -> None:
        """Sleep the link time of a message of ``nbytes`` (called around the real transfer)."""
        self._hold(time.perf_counter(), nbytes / self.link_bytes_per_s, count_overrun=False)

    def _hold(self, t0: float, target: float, count_overrun: bool = True) -> None:
        left = target - (time.perf_counter() - t0)
        if left > 0:
            time.sleep(left)
            self.slept_seconds += left
        elif count_overrun and target > 0:
            self.overrun_seconds -= left
            self.overrun_sections += 1


class NoPacer:
    """Stands in for :class:`Pacer` when nothing is emulated."""

    overrun_seconds = 0.0
    overrun_sections = 0
    slept_seconds = 0.0

    @contextmanager
    def compute(self, flops: float):
        yield

    def transfer(self, nbytes: int) -> None:
        pass
