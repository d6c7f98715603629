"""sandmle.plugins: integrations with heavy or external parts, loaded through entry points."""
