"""sandmle.graders"""
