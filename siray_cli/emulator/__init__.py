"""The local emulator of the Siray API (API.md). Never imported on the CLI's start-up path."""
