"""A command that flattens a study's results.jsonl into a CSV file."""
