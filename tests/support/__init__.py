"""What the tests share: the real service in a process of its own (:mod:`.server`), the
texts and photos they embed (:mod:`.corpora`) and the large inputs that show a job's
reading streams (:mod:`.streaming`)."""
