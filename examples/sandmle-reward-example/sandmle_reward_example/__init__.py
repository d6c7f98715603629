"""A reward that pays for medals and charges for steps."""
