"""Formatting for people: the terminal report and progress, Markdown for issue trackers."""
