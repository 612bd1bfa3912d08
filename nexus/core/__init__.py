"""Foundation every layer may use: settings, database sessions, errors, the orchestration contract, event log.

Nothing here knows about a domain (media, chat, ...); nothing here imports `models` or a domain package.
"""
