"""What one run shares across its processes (the controller and every xdist worker):
a file-locked JSON state (``shared_state``) and the request pacing that keeps a run
inside the target's rate limits, with the barrier before the rate-limit phase
(``pacing``)."""
