"""X: direct messages and public posts (adapter), and its settings."""
