"""The Siray API (the default provider)."""
