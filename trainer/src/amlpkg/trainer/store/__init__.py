"""The trainer's part of the workspace: its tables, runs and their queries."""
