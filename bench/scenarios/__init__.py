"""The scenarios of a run, one module each; bench/run.py runs them in order for each target.

    idle        ramp to N devices on one node, hold: connect rate, RSS per connection, idle CPU
    fanout      notifications at rising fixed rates: notify -> count-on-device latency,
                delivered share, sustained rate (one node; two nodes; two SQLite writers)
    store_work  count queries per notification; a burst to one user (one node, two nodes)
    storm       the node restarts under its devices: time until every device is back right
    fetch       fetch and acknowledge while notifications arrive; ack -> count on the other node
    two_nodes   two nodes joined by Redis: the store work, fan-out and fetch scenarios on them

Each is a function of the run's shared ``harness.context.Context`` and returns the part of
the result it measured.
"""

# The scenarios import tests.support (free ports) as well as the harness; importing the
# harness first puts the repository root on sys.path for it.
import harness  # noqa: F401
