"""Benchmarks for testservers: run ``python -m bench`` (``--quick``, or names).

Modules: ``bench_lifecycle`` (stop()/start() latency), ``bench_idle`` (idle
CPU and wake-ups), ``bench_ticks`` (service_actions() precision),
``bench_scale`` (1..1000 servers), ``bench_suite`` (start/request/stop
cycles), ``bench_throughput`` (UDP and TCP; runs ``bench_http`` and
``bench_smtp``), ``bench_hostile`` (peers that never read: memory,
CPU, a neighbour's latency, reactor stalls; clients in ``_hostile_client``).
``_runner`` is the CLI, ``_subjects`` the servers under
test (ours, the peers, the ``_floor`` minimal loop), ``_client`` the load
generators run in a child process, ``_report`` renders a saved run.
"""
