"""What the tests and the benchmarks share, so that neither imports the other: the real
service in a process of its own (``server``), and large job inputs with the probe that runs
a job's reading half over them in a fresh process (``streaming``)."""
