"""Incident cases: catalogue, working-time deadlines, the 7-step loop and its API."""
