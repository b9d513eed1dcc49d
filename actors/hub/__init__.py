"""The scheduler and what it owns: the job book and its store, the run queue and its window
policy, dictation streams and holds, latency, history, metrics; and the warden that watches it."""
