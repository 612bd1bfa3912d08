"""Search domain: hybrid retrieval over transcript chunks."""
