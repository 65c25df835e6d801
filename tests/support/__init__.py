"""What the tests share: the real service in a process of its own (:mod:`.server`),
collections set up over HTTP (:mod:`.collections`), the texts, photos and word vectors
they embed or index (:mod:`.corpora`), a tiny cross-encoder built at test time
(:mod:`.cross_encoder`), what an import drags in (:mod:`.isolation`) and large job inputs
streamed through a pipe (:mod:`.streaming`). The benchmarks import the server runner and
the streaming probe from here (bench may use tests' support; no test imports bench)."""
