"""Background analysis of submitted recordings: the job records, their store and the runner."""
