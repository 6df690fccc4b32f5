"""The Higgsfield generation API (its contract: every fact tagged with its source)."""
