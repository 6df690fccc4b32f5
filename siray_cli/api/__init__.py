"""The thin API layer: an httpx client, typed results and typed errors.

No Typer, no rich, no printing here."""
