"""Example paglets and the commands that start them (``paglets examples ...``)."""
