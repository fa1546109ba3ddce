"""A stand-in in another process reads the same clock as the process that started it.

The test suite can run as if it were another moment (`make test TEST_NOW=...`, see tests/clock.py),
which moves every clock in the test process with time-machine. A stand-in that runs in a child
process (the Stripe stand-in) would still sign its webhooks and stamp its objects with the real time,
and `stripe.Webhook.construct_event` refuses a signature more than five minutes away from its own
clock. So the parent passes how far its clock is from the real one, and the child moves its own clock
by as much before it serves. Both clocks then tick at the real rate and stay together.

Outside tests the offset is zero and nothing is imported or changed.
"""

from __future__ import annotations

import os
import time

ENV = "STANDIN_CLOCK_OFFSET"


def caller_clock_offset() -> float:
    """Seconds this process's clock is ahead of the real one (negative when behind; 0 on the real clock)."""
    try:
        import time_machine
    except ImportError:  # a production image has no test tools, and no moved clock either
        return 0.0
    if not time_machine.escape_hatch.is_travelling():
        return 0.0
    return time.time() - time_machine.escape_hatch.time.time()


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a stand-in's child process, carrying this process's clock."""
    child = dict(os.environ if env is None else env)
    offset = caller_clock_offset()
    if offset:
        child[ENV] = repr(offset)
    else:
        child.pop(ENV, None)
    return child


def follow_caller_clock() -> None:
    """In the child: move this process's clock as the parent's was moved (no-op when it was not)."""
    offset = float(os.environ.get(ENV) or 0)
    if not offset:
        return
    import time_machine

    # Started and never stopped: the whole process lives at the caller's moment, ticking.
    time_machine.travel(time.time() + offset, tick=True).start()
