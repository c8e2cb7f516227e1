"""Runnable demos of paglets: each starts its own throwaway hosts (``python demos/NAME.py``)."""
