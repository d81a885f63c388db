"""Evaluation of a pipeline against gold mentions: metrics, outcome categories, threshold calibration,
comparison of runs and the HTML report (``glinker eval``; the run itself is glinker/jobs/evaluate.py)."""
