"""The API surface: servicer, interceptor, access policy, request validation."""
