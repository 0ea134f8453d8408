"""The ``opendance`` commands: the top layer, which may import every package below it."""
