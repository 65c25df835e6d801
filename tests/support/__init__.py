"""What the tests share: the real service in a process of its own (:mod:`.server`),
collections set up over HTTP (:mod:`.collections`), the texts, photos and word vectors
they embed or index (:mod:`.corpora`), a tiny cross-encoder built at test time
(:mod:`.cross_encoder`) and what an import drags in (:mod:`.isolation`). The server
runner and the large job inputs are in :mod:`harness`, which the benchmarks share."""
