"""A third-party sandmle plugin: a one-shot scaffold and an exact-match grader."""
