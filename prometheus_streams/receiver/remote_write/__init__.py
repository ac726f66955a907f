"""Remote-write output's codec: exposition text in, Prometheus Remote-Write 1.0 requests out."""
