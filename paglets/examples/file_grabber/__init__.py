"""The file grabber: a paglet that carries one registered file to another host (``paglets-file-grabber``)."""
