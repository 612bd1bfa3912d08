"""Identity domain: users, API keys, workspaces, and the one authorization rule (`access`)."""
