"""HTTP/1.1 on h11: the host server and keep-alive clients."""
