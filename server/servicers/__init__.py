"""The gRPC servicers: each converts requests, calls a core service and converts the result."""
