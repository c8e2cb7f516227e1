"""Inactive records and managed storage."""
