"""vecserve's service layer: the command line (and, next, the HTTP API)."""
