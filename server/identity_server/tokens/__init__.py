"""Local token verification: JWS decoding, the key set, the verifier."""
