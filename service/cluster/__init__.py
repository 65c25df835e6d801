"""vecserve past one machine, on Ray: sharded and replicated serving (Ray Serve) and batch
indexing (Ray Data).

Everything that imports Ray is in this package, installed with the ``cluster`` extra;
nothing outside it imports Ray, so a single-node server never loads it. The parts that do
not need Ray (a shard's server, a read replica, the router's sharded engine) are plain
modules of their own and are tested as such.
"""
