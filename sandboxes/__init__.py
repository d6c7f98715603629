"""sandmle.sandboxes"""
