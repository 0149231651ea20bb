"""The gRPC face of jobtask: servicers, interceptors, conversions, bootstrap and CLI."""
