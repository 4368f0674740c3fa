"""What a run needs from the process, below every stage: metrics, allocation tuning, prefetch threads.

Nothing here knows about extracts, rows or Kafka transactions.
"""
