"""Running the pool's Lambda triggers where Cognito would, with Cognito's events.

A trigger runs when the pool's `LambdaConfig` names a function for it; the
pool definition says which handler that trigger's function runs
(`identity_triggers.pre_sign_up.handler`) and its environment. A handler runs in-process with that
environment applied (one invocation at a time, as a Lambda sandbox runs one),
and with `AWS_ENDPOINT_URL` pointing its boto3 calls at the local Cognito.
When a handler raises, the operation fails as Cognito's does:
UserLambdaValidationException, "<Trigger> failed with error <message>."
"""

from __future__ import annotations

import copy
import importlib
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Handler = Callable[[dict[str, Any], Any], Any]

PRE_SIGN_UP = "PreSignUp"
POST_CONFIRMATION = "PostConfirmation"

# One invocation at a time: handlers read os.environ, as in a Lambda sandbox.
_invoking = threading.Lock()


class TriggerFailed(Exception):
    """A handler raised (or is missing); `message` is Cognito's wording."""

    def __init__(self, trigger: str, error: str) -> None:
        self.message = f"{trigger} failed with error {error}."
        super().__init__(self.message)


@dataclass
class Function:
    """One Lambda function: its handler and environment."""

    name: str
    handler: str
    environment: dict[str, str] = field(default_factory=dict)

    def load(self) -> Handler:
        module, _, attribute = self.handler.rpartition(".")
        found: Handler = getattr(importlib.import_module(module), attribute)
        return found


@dataclass(frozen=True)
class Context:
    """The parts of Lambda's context object a handler may read."""

    function_name: str
    aws_request_id: str = "local"
    memory_limit_in_mb: int = 128

    def get_remaining_time_in_millis(self) -> int:
        return 5000


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Triggers:
    """The pool's trigger functions, by trigger name (`PreSignUp`, `PostConfirmation`)."""

    def __init__(self, functions: Mapping[str, Function], endpoint: str = "") -> None:
        self.functions = dict(functions)
        self.endpoint = endpoint
        # The latest events, as the handlers received them (for tests).
        self.invocations: deque[dict[str, Any]] = deque(maxlen=64)

    def configure(self, trigger: str, **environment: str) -> None:
        """Change a trigger function's environment (tests; `make run` reads the definition)."""
        self.functions[trigger].environment.update(environment)

    def invoke(self, lambda_config: Mapping[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """Run the trigger `event` is for, if the pool has one; the event it returns."""
        trigger = str(event["triggerSource"]).partition("_")[0]
        if not lambda_config.get(trigger):
            return event
        function = self.functions.get(trigger)
        if function is None:
            raise TriggerFailed(trigger, "function not found")
        environment = {"AWS_REGION": str(event["region"]), **function.environment}
        if self.endpoint:
            environment["AWS_ENDPOINT_URL"] = self.endpoint
        with _invoking, _environment(environment):
            self.invocations.append(copy.deepcopy(event))
            try:
                answer = function.load()(event, Context(function.name))
            except Exception as exc:
                raise TriggerFailed(trigger, str(exc) or type(exc).__name__) from exc
        if not isinstance(answer, dict):
            raise TriggerFailed(trigger, "invalid lambda response")
        return answer


def event(
    *,
    source: str,
    region: str,
    pool_id: str,
    client_id: str,
    user_name: str,
    request: dict[str, Any],
    response: dict[str, Any],
) -> dict[str, Any]:
    """A trigger event in Cognito's shape (the fields every trigger shares)."""
    return {
        "version": "1",
        "region": region,
        "userPoolId": pool_id,
        "userName": user_name,
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": client_id},
        "triggerSource": source,
        "request": request,
        "response": response,
    }
