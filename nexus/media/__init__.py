"""Media domain: fetching, probing, converting, fingerprinting, transcribing, chunking, and the job record."""
