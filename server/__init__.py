"""The gRPC face of jobtask: servicers, the call guard, conversions, bootstrap and CLI."""
