"""A trainer that keeps the best of n episodes per task as fine-tuning data."""
