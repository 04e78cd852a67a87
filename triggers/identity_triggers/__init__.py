"""The user pool's Lambda triggers: plain handlers for the Lambda Python runtime.

Each module is one trigger with a `handler(event, context)` that takes
Cognito's event (`triggerSource`, `request`, `response`) and returns it. They
use only the standard library and boto3 (what the runtime ships), and read
their configuration from environment variables. The deployment templates ship
exactly these modules; the local stack (`identity_server.local.triggers`) runs
them where Cognito would.
"""
