"""Integrations domain: OAuth connections to outside accounts, their sealed tokens and their refresh lifecycle."""
