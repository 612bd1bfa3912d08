"""Chat domain: conversations, personas, turns, and answer generation with citations."""
