"""sandmle.generators"""
