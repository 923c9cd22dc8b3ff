"""banditroute test suite (pytest on real PostgreSQL and real gRPC servers)."""
