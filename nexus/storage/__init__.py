"""Object storage: a local directory or S3-compatible buckets, behind one interface."""
