"""The banditroute gRPC service: servicers, routing core, storage, configuration and CLI."""
