"""Room for a loaded machine in the tests' time bounds.

A test bounds time only by a setting of the behaviour under test (a deadline, a drain, a lease,
a timeout), plus ``SLACK``: what a busy 2-core host (this suite, other suites beside it, busy
loops) can add before a process that is due to act gets to run. ``SLACK`` stays well under what
each guarded defect would take (a default 30 s timeout, a minute of AVIF, a hang), so every
bound still fails on the defect it is there for. Waiting for an event is polling until it
happens; the bound on that wait only stops a hung test."""

SLACK = 10.0
