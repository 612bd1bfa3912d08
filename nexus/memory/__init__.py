"""Memory domain: what Nexus remembers about a user (Mem0 over pgvector)."""
