"""sandmle.evaluation"""
