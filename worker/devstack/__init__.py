"""Development tools, never imported by a worker: a private redis-server, the worker processes
and the whole stack that ``make demo``, the tests and the benchmarks start."""
