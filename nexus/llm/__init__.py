"""Language and embedding models: provider clients (Gemini, OpenAI-compatible, extractive) and the embedder."""
