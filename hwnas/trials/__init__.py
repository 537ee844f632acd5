"""Optuna plumbing shared by the search, the retrain queue and run folders: the study
storage (journal file or URL, retries, heartbeats, samplers, per-worker seeds, the seed
lock; :mod:`.storage`) and the workers (identity, liveness, dead trials, Ctrl-C;
:mod:`.workers`). Nothing here knows the search's settings.
"""
