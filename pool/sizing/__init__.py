"""Sizing the pool (DESIGN.md §12), as pure functions: no I/O, no clock, no settings read.

- `demand`: the recent claim rate (smoothed, remembering a decaying peak) and the refill quantile.
- `schedule`: cron-like windows that raise the floor (`weekdays 09-18 >= 10`).
- `target`: the idle target of one template and the reason it has that value.
- `retire`: which idle rows to recycle (past a maximum idle age) or drain (above target).

The tick feeds these what it read and applies what they return; the simulator (`bench.sim`) runs
the same functions in simulated time.
"""
