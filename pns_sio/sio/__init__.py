"""Where PNS meets python-socketio's and python-engineio's internals: only here.

- ``server.py``: the ``AsyncServer`` subclass (client packet hardening, the node's
  hooks, starting the manager, dropping unanswered ack callbacks);
- ``packets.py``: the packet class client packets are decoded with;
- ``websocket.py``: the WebSocket driver and the one-task Engine.IO loop;
- ``managers.py``: the in-process and Redis managers (``LocalBroker``, ``RedisBroker``);
- ``routed.py``: routed mode's manager (a Redis channel per user, ``RoutedRedisBroker``);
- ``cluster.py``: routed mode on a Redis Cluster (shard channels, ``ClusterRoutedBroker``);
- ``rooms.py``: the index of each client's rooms the managers keep;
- ``publish.py``: the write-only manager the application-side publishers use;
- ``internals.py``: every private name of those libraries used here, with the file
  that uses it; tests/test_library_internals.py fails when an upgrade moves one.
"""
