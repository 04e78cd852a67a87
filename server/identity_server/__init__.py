"""The identity service's gRPC server. Run it with `identity-server`.

Nothing here is a library API: the modules are private, the command and the
gRPC API (protos/identity/v1) are the interface.
"""

__all__: list[str] = []
