"""The web console: server-rendered pages over the gRPC API, as the signed-in actor.

It is a client like any other: every page is made of RPCs carrying the actor's identity,
so it sees and may do exactly what that actor may through the API, on any replica."""
